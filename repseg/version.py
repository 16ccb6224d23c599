__version__ = '0.3.0.dev0'

#: The oldest torch with what RepSeg uses: ``torch.serialization.safe_globals`` (checkpoint reading) and
#: ``torch.onnx.export(dynamo=False)``; setup.cfg and the Makefile ask for the same.
MIN_TORCH = (2, 5)


def check_torch(version: str) -> None:
    """Refuse a torch older than ``MIN_TORCH`` at import, in one line, not at the first checkpoint read or export."""
    try:
        found = tuple(int(part) for part in version.split('+')[0].split('.')[:2])
    except ValueError:
        return  # a development build's version string: let it try
    if found < MIN_TORCH:
        wanted = '.'.join(map(str, MIN_TORCH))
        raise ImportError(f'RepSeg needs torch >= {wanted}; this environment has torch {version}: '
                          f'pip install "torch>={wanted}" (or make install, which takes torch==2.13.0)')

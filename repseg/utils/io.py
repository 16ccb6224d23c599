"""Safe reading of checkpoints from outside and all-or-nothing writes.

Every result file is written by Python's own file calls (PyTorch, OpenVINO and OpenCV serialize to bytes first), so
that a write that fails part-way (disk full, quota, file-size limit, read-only file system, I/O error) surfaces as
one ``WriteError`` naming the file RepSeg was writing, not as a C++ assertion, and leaves nothing behind.
"""
import errno
import io
import os
import pickle
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Union

import torch
from torch import Tensor

PathLike = Union[str, os.PathLike]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message is one line naming the file."""


#: The errors of a write that the machine refused part-way: no space, quota, file-size limit, read-only, I/O.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})


class WriteError(OSError):
    """A result file that could not be written; ``str()`` is the line tools print: ``could not write FILE: REASON``."""

    def __init__(self, path: 'PathLike', reason: str, code: Optional[int] = None):
        super().__init__(code, reason, str(path))

    def __str__(self) -> str:
        return f'could not write {self.filename}: {self.strerror}'


def is_write_failure(err: BaseException) -> bool:
    """Whether ``err`` is the machine refusing a write (not a bug, not a missing input)."""
    return isinstance(err, WriteError) or (isinstance(err, OSError) and err.errno in WRITE_ERRNOS)


def as_write_error(err: OSError, path: 'PathLike') -> WriteError:
    """``err`` (a write failure) as a ``WriteError`` naming ``path``, the file the caller was writing."""
    return WriteError(path, err.strerror or str(err), err.errno)


def write_file(path: 'PathLike', data: Union[bytes, str]) -> None:
    """Write ``data`` to ``path`` (inside a folder being built: ``atomic_dir``); a refused write names ``path``."""
    try:
        with open(path, 'wb' if isinstance(data, bytes) else 'w') as handle:
            handle.write(data)
    except OSError as err:
        if is_write_failure(err):
            raise as_write_error(err, path) from None
        raise


def torch_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` as bytes: torch's own file writer reports a full disk as a C++ assertion."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def safe_torch_load(path: PathLike, map_location: Union[str, torch.device] = 'cpu') -> Any:
    """``torch.load(weights_only=True)`` (a pickle that would run code is refused unrun) with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'{path}: no such checkpoint file')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is many lines; keep the one that says what the pickle wanted
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        wanted = next((line for line in lines if 'GLOBAL' in line or 'Unsupported global' in line), None)
        if wanted:
            raise CheckpointError(f'{path}: refused without loading: the pickle asks for code or objects beyond '
                                  f'tensors ({wanted.rstrip(".")}); only plain state dicts are accepted') from None
        detail = next((line for line in lines if line.startswith('Unsupported')), '')
        raise CheckpointError(f'{path}: not a PyTorch checkpoint ({detail or "unreadable pickle"})') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0].split('. ')[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f'{path}: not a readable PyTorch checkpoint, truncated or corrupt ({first})') from None


def unwrap_state_dict(obj: Any, source: str) -> Dict[str, Tensor]:
    """The tensor dict inside ``obj``: itself, or under ``state_dict`` / ``model`` (nested up to 3 levels)."""
    for _ in range(3):
        if not isinstance(obj, Mapping) or all(isinstance(v, Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in ('state_dict', 'model') if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f'{source}: holds {type(obj).__name__ if obj is not None else "None"}'
                              f'{" (empty)" if isinstance(obj, Mapping) else ""}, expected a state dict '
                              f'(bare or under "state_dict" / "model")')
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CheckpointError(f'{source}: entry {key!r} holds a {type(value).__name__}, expected a tensor '
                                  f'(keys "state_dict" or "model" are unwrapped)')
    return dict(obj)


@contextmanager
def atomic_write(path: PathLike, mode: str = 'wb') -> Iterator:
    """Write to a temporary file beside ``path`` and rename it into place only when the block succeeds."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the mode open() would give
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if is_write_failure(err) and not isinstance(err, WriteError):
            raise as_write_error(err, path) from None
        raise


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``."""
    data = torch_bytes(obj)
    with atomic_write(path, 'wb') as handle:
        handle.write(data)


#: What a complete file of an image format (known by its first bytes) ends with: JPEG's end-of-image marker, PNG's
#: IEND chunk. OpenCV and PIL decode a file cut short in part (the rest grey) with only a warning on stderr.
END_MARKERS = {b'\xff\xd8': b'\xff\xd9', b'\x89PNG\r\n\x1a\n': b'IEND\xaeB`\x82'}


def is_cut_short(path: PathLike) -> bool:
    """Whether a JPEG or PNG file lacks its end marker (trailing padding aside); other formats: False."""
    with open(path, 'rb') as handle:
        head = handle.read(8)
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64))
        tail = handle.read().rstrip(b'\x00\r\n ')
    return any(head.startswith(magic) and not tail.endswith(end) for magic, end in END_MARKERS.items())


def check_out_file(path: PathLike, force: bool = False) -> None:
    """Refuse, before any work, an output file path that is a folder, or a file that exists unless ``force``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f'{path}: is a folder; expected the path of the file to write')
    if path.exists() and not force:
        raise FileExistsError(f'{path}: exists (an earlier result); choose another path, or pass --force to '
                              f'replace it')


def check_out_dir(path: PathLike, force: bool = False) -> None:
    """Refuse an out-dir that is not a folder, or that holds files (never mix two runs) unless ``force``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f'{path}: exists and is not a folder; expected a new or empty out-dir')
    held = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if held and not force:
        shown = ', '.join(held[:4]) + (f' (+{len(held) - 4} more)' if len(held) > 4 else '')
        raise FileExistsError(f'{path}: holds an earlier result ({shown}); choose another out-dir, or pass --force '
                              f'to replace the folder whole')


def _named_in(err: BaseException, tmp: Path, path: Path) -> WriteError:
    """A write failure inside ``tmp``, the folder being built for ``path``, naming the file by its final path."""
    name = Path(err.filename) if isinstance(err, OSError) and err.filename else None
    if name is not None and (name == tmp or tmp in name.parents):
        name = path / name.relative_to(tmp)
    return as_write_error(err, name or path)


def publish_dir(tmp: Path, path: Path, force: bool = False) -> None:
    """Move the finished folder ``tmp`` onto ``path`` (checked again); an error at any moment leaves ``path`` as is."""
    check_out_dir(path, force)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700; the folder gets the mode mkdir would give
    old = None
    try:
        if path.exists():  # a folder cannot be renamed onto a non-empty one: the old one steps aside first
            old = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.old', dir=path.parent))
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(path: PathLike, force: bool = False) -> Iterator[Path]:
    """Build a folder result in a temporary sibling of ``path`` and move it onto ``path`` (``publish_dir``) only when
    the block succeeds; a refused write inside becomes a ``WriteError`` naming the file's final path."""
    path = Path(path)
    check_out_dir(path, force)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent))
        yield tmp
        publish_dir(tmp, path, force)
    except BaseException as err:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if is_write_failure(err):
            raise (_named_in(err, tmp, path) if tmp is not None else as_write_error(err, path)) from None
        raise

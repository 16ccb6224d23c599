"""CUDA details that decide whether a figure means what it says: which GPU a ``cuda:N`` string names, and TF32.

On Ampere and newer GPUs PyTorch runs cuDNN's fp32 convolutions in TF32 by default (10-bit mantissa): fast, but not
fp32. Where an fp32 figure or an exactness proof is made, TF32 is switched off (``ieee_fp32``); where it is left on,
the figure is labelled ``tf32`` (``float_precision``).
"""
import contextlib
from typing import Iterator, Optional, Union

import torch

Device = Union[str, torch.device]


def cuda_index(device: Device) -> Optional[int]:
    """The GPU index ``device`` names (``cuda`` alone: the current one), or None for a non-CUDA device."""
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    return torch.cuda.current_device() if device.index is None else device.index


def _tf32_backends():
    """(object, attribute, value that means TF32, value that means IEEE fp32) for convolutions and matmuls: torch's
    ``fp32_precision`` API where it exists (mixing it with the legacy ``allow_tf32`` flags is an error there)."""
    conv = getattr(getattr(torch.backends.cudnn, 'conv', None), 'fp32_precision', None)
    if conv is not None:
        return [(torch.backends.cudnn.conv, 'fp32_precision', 'tf32', 'ieee'),
                (torch.backends.cuda.matmul, 'fp32_precision', 'tf32', 'ieee')]
    return [(torch.backends.cudnn, 'allow_tf32', True, False), (torch.backends.cuda.matmul, 'allow_tf32', True, False)]


def tf32_enabled() -> bool:
    """Whether fp32 convolutions may run in TF32 (cuDNN's setting; PyTorch's default is yes)."""
    owner, name, tf32, _ = _tf32_backends()[0]
    return getattr(owner, name) == tf32


def float_precision(device: Device) -> str:
    """What an fp32 model computes in on ``device``: 'tf32' on a GPU with TF32 (compute capability >= 8) while it is
    enabled, else 'fp32'."""
    index = cuda_index(device)
    if index is None or not tf32_enabled():
        return 'fp32'
    return 'tf32' if torch.cuda.get_device_capability(index)[0] >= 8 else 'fp32'


@contextlib.contextmanager
def ieee_fp32() -> Iterator[None]:
    """Within the block, fp32 convolutions and matmuls on CUDA run in IEEE fp32 (TF32 off); restored afterwards."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _, _ in _tf32_backends()]
    try:
        for owner, name, _, ieee in _tf32_backends():
            setattr(owner, name, ieee)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)

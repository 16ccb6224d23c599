"""The one deploy rewrite of PSP's adaptive pooling, applied by every converter (ONNX export, OpenVINO conversion).

``AdaptiveAvgPool2d`` with bins (1, 2, 3, 6) on maps such as 90x90, whose size the bins do not divide, is refused by
the ONNX exporter and runs in OpenVINO on a reference kernel (``unknown_f32``: a third of the int8 time of a
PSPNet on AMX). Per axis, adaptive average pooling is a linear map: ``rows @ x @ cols^T`` with one averaging matrix
per axis, built in the graph from the traced H and W: one exported model is exact for every input size and runs on
GEMM kernels. The swap lasts one conversion; the model is left as it was.
"""
import contextlib
from typing import Iterator, List, Tuple, Union

import torch
from torch import Tensor, nn


def averaging_matrix(size: Union[int, Tensor], bins: int, dtype: torch.dtype = torch.float32,
                     device: Union[str, torch.device] = 'cpu') -> Tensor:
    """(bins, size) matrix whose row i averages PyTorch's adaptive-pooling window i, [floor(i n/k), ceil((i+1) n/k)):
    j is in it iff ``i n < (j + 1) k`` and ``j k < (i + 1) n`` (traceable integer compares, no division)."""
    j = torch.arange(size, dtype=torch.int64, device=device).unsqueeze(0)
    i = torch.arange(bins, dtype=torch.int64, device=device).unsqueeze(1)
    inside = ((i * size < (j + 1) * bins) & (j * bins < (i + 1) * size)).to(dtype)
    return inside / inside.sum(dim=1, keepdim=True)


class MatmulAdaptiveAvgPool2d(nn.Module):
    """``AdaptiveAvgPool2d(output_size)`` as ``rows @ x @ cols^T``, exact for any H x W and exported shape-generic."""

    def __init__(self, output_size: Union[int, Tuple]):
        super().__init__()
        self.output_size = output_size

    def _bins(self, x: Tensor) -> Tuple[int, int]:
        out = self.output_size if isinstance(self.output_size, (tuple, list)) else (self.output_size,) * 2
        return tuple(int(x.shape[-2 + i]) if o is None else int(o) for i, o in enumerate(out))

    def forward(self, x: Tensor) -> Tensor:
        rows_bins, cols_bins = self._bins(x)
        height, width = x.shape[-2], x.shape[-1]  # traced sizes: the graph stays shape-generic
        cols_t = averaging_matrix(width, cols_bins, x.dtype, x.device).transpose(0, 1)
        # columns first: the larger product is then one plain (N C H, W) x (W, k) GEMM
        return torch.matmul(averaging_matrix(height, rows_bins, x.dtype, x.device), torch.matmul(x, cols_t))

    def extra_repr(self) -> str:
        return f'output_size={self.output_size}'


@contextlib.contextmanager
def matmul_pools(model: nn.Module) -> Iterator[int]:
    """Within the block, ``model``'s ``AdaptiveAvgPool2d`` are ``MatmulAdaptiveAvgPool2d`` (yields how many); in place,
    not on a copy, so that NNCF wrappers keep their modules and a large model is not copied."""
    swapped: List[Tuple[nn.Module, str, nn.Module]] = [
        (parent, name, child) for parent in model.modules() for name, child in parent.named_children()
        if type(child) is nn.AdaptiveAvgPool2d]
    for parent, name, pool in swapped:
        setattr(parent, name, MatmulAdaptiveAvgPool2d(pool.output_size))
    try:
        yield len(swapped)
    finally:
        for parent, name, pool in swapped:
            setattr(parent, name, pool)

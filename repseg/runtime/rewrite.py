"""The deploy rewrites applied by every converter (ONNX export, OpenVINO conversion): PSP's adaptive pooling and the
final bilinear resize of the logits as matrix products.

``AdaptiveAvgPool2d`` with bins (1, 2, 3, 6) on maps such as 90x90, whose size the bins do not divide, is refused by
the ONNX exporter and runs in OpenVINO on a reference kernel (``unknown_f32``: a third of the int8 time of a
PSPNet on AMX). Per axis, adaptive average pooling is a linear map: ``rows @ x @ cols^T`` with one averaging matrix
per axis, built in the graph from the traced H and W: one exported model is exact for every input size and runs on
GEMM kernels.

The resize of the logits to the input size is the same kind of linear map per axis (bilinear = linear along H, then
along W). As ``Resize``/``Interpolate`` it is a large fixed cost of every segmentor on a CPU: ONNX Runtime and
OpenVINO interpolate in a blocked or channels-last layout and then reorder the full-size result to NCHW (about 50 ms
of a 19-class 512x1024 output on a 2-vCPU Xeon, more than all of a small model's int8 convolutions); as two GEMMs
(``rows @ x @ cols^T``) the output is written once, in NCHW. The swap lasts one conversion; the model is left as it
was.
"""
import contextlib
from typing import Iterator, List, Tuple, Union

import torch
from torch import Tensor, nn

from ..models.seg_logits import BilinearResize


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


def interpolation_matrix(size: Union[int, Tensor], out_size: Union[int, Tensor], align_corners: bool = False,
                         dtype: torch.dtype = torch.float32, device: Union[str, torch.device] = 'cpu') -> Tensor:
    """(out_size, size) matrix of PyTorch's 1-D linear interpolation: output i reads the source coordinate
    ``(i + 0.5) size / out_size - 0.5`` clamped at 0 (``align_corners=False``) or ``i (size - 1) / (out_size - 1)``,
    weighting its two neighbours (the upper one clamped to the last index)."""
    i = torch.arange(out_size, device=device).to(torch.float32)
    n_in, n_out = (torch.arange(n, device=device)[-1:].to(torch.float32) + 1 for n in (size, out_size))  # traceable
    if align_corners:
        src = i * ((n_in - 1) / (n_out - 1).clamp(min=1))
    else:
        src = ((i + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    low = src.floor()
    frac = (src - low).unsqueeze(1)
    j = torch.arange(size, device=device).to(torch.float32).unsqueeze(0)
    high = torch.minimum(low + 1, n_in - 1).unsqueeze(1)
    low = low.unsqueeze(1)
    matrix = (j == low).to(torch.float32) * (1 - frac) + (j == high).to(torch.float32) * frac
    return matrix.to(dtype)


class MatmulBilinearResize(BilinearResize):
    """``BilinearResize`` as ``rows @ x @ cols^T`` (columns first: the smaller product on a small input)."""

    def forward(self, x: Tensor, size) -> Tensor:
        height, width = x.shape[-2], x.shape[-1]
        rows = interpolation_matrix(height, size[0], self.align_corners, x.dtype, x.device)
        cols_t = interpolation_matrix(width, size[1], self.align_corners, x.dtype, x.device).transpose(0, 1)
        return torch.matmul(rows, torch.matmul(x, cols_t))


def _swap(model: nn.Module, kind: type, make) -> List[Tuple[nn.Module, str, nn.Module]]:
    swapped = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if type(child) is kind]
    for parent, name, child in swapped:
        setattr(parent, name, make(child))
    return swapped


@contextlib.contextmanager
def deploy_rewrites(model: nn.Module) -> Iterator[int]:
    """Within the block, ``model``'s ``AdaptiveAvgPool2d`` and ``BilinearResize`` are their matrix-product forms
    (yields how many were swapped); in place, not on a copy (NNCF wrappers keep their modules, a large model is not
    copied); the very same modules are put back, even on error."""
    swapped: List[Tuple[nn.Module, str, nn.Module]] = []
    try:
        swapped += _swap(model, nn.AdaptiveAvgPool2d, lambda pool: MatmulAdaptiveAvgPool2d(pool.output_size))
        swapped += _swap(model, BilinearResize, lambda resize: MatmulBilinearResize(resize.align_corners))
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)

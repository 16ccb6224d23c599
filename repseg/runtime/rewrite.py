"""The one deploy rewrite of PSP's adaptive pooling, applied by every converter (ONNX export, OpenVINO conversion).

``AdaptiveAvgPool2d`` with bins (1, 2, 3, 6) on maps such as 90x90, whose size the bins do not divide, is refused by
the ONNX exporter and runs in OpenVINO on a reference kernel (``unknown_f32``: a third of the int8 time of a
PSPNet on AMX). Per axis, adaptive average pooling is a linear map: ``rows @ x @ cols^T`` with one averaging matrix
per axis. Here the matrices are built inside the graph from the input's traced H and W (arange and compares, no
division), so one exported model is exact for every input size, and the two matmuls run on the runtimes'
optimized GEMM kernels. The rewrite is a swap for the duration of a conversion: the model (MMSegmentation's own
PSPHead, the training definition) is left as it was.
"""
import contextlib
from typing import Iterator, List, Tuple, Union

import torch
from torch import Tensor, nn


def averaging_matrix(size: Union[int, Tensor], bins: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(bins, size) matrix whose row i averages PyTorch's adaptive-pooling window i, [floor(i n/k), ceil((i+1) n/k)).

    Built from ``size`` by traceable ops: j is in window i iff ``i n < (j + 1) k`` and ``j k < (i + 1) n``
    (integer compares, equivalent to the floor/ceil bounds), each row divided by its window's length."""
    j = torch.arange(size, dtype=torch.int64).unsqueeze(0)
    i = torch.arange(bins, dtype=torch.int64).unsqueeze(1)
    inside = ((i * size < (j + 1) * bins) & (j * bins < (i + 1) * size)).to(dtype)
    return inside / inside.sum(dim=1, keepdim=True)


class MatmulAdaptiveAvgPool2d(nn.Module):
    """``AdaptiveAvgPool2d(output_size)`` as ``rows @ x @ cols^T``, matrices from the input's size on every call:
    exact (up to float rounding) for any H x W, and exported shape-generic."""

    def __init__(self, output_size: Union[int, Tuple]):
        super().__init__()
        self.output_size = output_size

    def _bins(self, x: Tensor) -> Tuple[int, int]:
        out = self.output_size if isinstance(self.output_size, (tuple, list)) else (self.output_size,) * 2
        return tuple(int(x.shape[-2 + i]) if o is None else int(o) for i, o in enumerate(out))

    def forward(self, x: Tensor) -> Tensor:
        rows_bins, cols_bins = self._bins(x)
        height, width = x.shape[-2], x.shape[-1]  # traced sizes: the graph stays shape-generic
        cols_t = averaging_matrix(width, cols_bins, x.dtype).transpose(0, 1)
        # columns first: the larger product is then one plain (N C H, W) x (W, k) GEMM
        return torch.matmul(averaging_matrix(height, rows_bins, x.dtype), torch.matmul(x, cols_t))

    def extra_repr(self) -> str:
        return f'output_size={self.output_size}'


@contextlib.contextmanager
def matmul_pools(model: nn.Module) -> Iterator[int]:
    """Within the block, every ``AdaptiveAvgPool2d`` of ``model`` is a ``MatmulAdaptiveAvgPool2d`` (yields how many
    were swapped); on leaving, the original modules are back. Swapped in place rather than on a copy: no second copy
    of a large model, and quantization wrappers (NNCF) keep their own modules. Nested use swaps nothing twice."""
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

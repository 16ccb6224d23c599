"""Exact, shape-specialized rewrites that let exporters take the whole model.

PSPNet's pyramid pooling uses ``AdaptiveAvgPool2d`` with bins (1, 2, 3, 6) on maps such as 90x90 whose size is not
a multiple of the bin count, which the ONNX exporter refuses. For a fixed input size the pooling is a linear map per
axis: two matmuls with constant averaging matrices over PyTorch's bins, the same result up to float rounding.
"""
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn


def averaging_matrix(size: int, bins: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(bins, size) matrix whose row i averages PyTorch's adaptive-pooling window i, [floor(i n/k), ceil((i+1) n/k))."""
    matrix = torch.zeros(bins, size, dtype=dtype)
    for i in range(bins):
        start, end = (i * size) // bins, -((-(i + 1) * size) // bins)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


class StaticAdaptiveAvgPool2d(nn.Module):
    """``AdaptiveAvgPool2d`` for one input size, as ``rows @ x @ cols^T``."""

    def __init__(self, in_size: Tuple[int, int], out_size: Tuple[int, int]):
        super().__init__()
        self.in_size, self.out_size = tuple(in_size), tuple(out_size)
        self.register_buffer('rows', averaging_matrix(in_size[0], out_size[0]), persistent=False)
        self.register_buffer('cols_t', averaging_matrix(in_size[1], out_size[1]).t().contiguous(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_tracing() and tuple(x.shape[-2:]) != self.in_size:
            raise ValueError(f'StaticAdaptiveAvgPool2d: input size {tuple(x.shape[-2:])}, built for {self.in_size}')
        return torch.matmul(torch.matmul(self.rows, x), self.cols_t)


@torch.no_grad()
def specialize_adaptive_pools(model: nn.Module, example: Tensor) -> int:
    """Replace every ``AdaptiveAvgPool2d`` in ``model`` by its static equivalent for ``example``'s shape (one
    forward pass records the sizes). Returns the number replaced."""
    sizes: Dict[nn.Module, Tuple[int, int]] = {}
    pools: List[Tuple[nn.Module, str, nn.AdaptiveAvgPool2d]] = [
        (parent, name, child) for parent in model.modules() for name, child in parent.named_children()
        if isinstance(child, nn.AdaptiveAvgPool2d)]
    if not pools:
        return 0

    def record(module: nn.Module, inputs: Tuple[Tensor, ...], output: Tensor) -> None:
        sizes.setdefault(module, tuple(inputs[0].shape[-2:]))  # a hook returning a value would replace the output

    hooks = [pool.register_forward_hook(record) for _, _, pool in pools]
    try:
        model(example)
    finally:
        for hook in hooks:
            hook.remove()
    replaced = 0
    for parent, name, pool in pools:
        if pool not in sizes:
            continue
        out = pool.output_size if isinstance(pool.output_size, tuple) else (pool.output_size, pool.output_size)
        out = tuple(sizes[pool][i] if o is None else o for i, o in enumerate(out))
        param = next(model.parameters(), None)
        new = StaticAdaptiveAvgPool2d(sizes[pool], out)
        if param is not None:
            new = new.to(device=param.device, dtype=param.dtype)
        setattr(parent, name, new)
        replaced += 1
    return replaced

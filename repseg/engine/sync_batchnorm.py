"""SyncBN that also synchronizes CPU tensors, for multi-process training without GPUs (gloo).

MMSegmentation's ``SyncBN`` is torch's ``nn.SyncBatchNorm``, whose multi-process path refuses CPU tensors in torch
2.13. ``CPUSyncBatchNorm`` computes the same on the CPU: statistics over all processes' images (two all-reduces),
with the gradient carried through them by autograd, as torch's CUDA kernels do.
"""
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes of ``group``, whose gradient is the sum of all processes' gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any) -> Tensor:
        ctx.group = group
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Any:
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=ctx.group)
        return total, None


class CPUSyncBatchNorm(_BatchNorm):
    """``nn.SyncBatchNorm`` (same arguments, parameters and buffers) whose training forward synchronizes CPU tensors
    (any backend, e.g. gloo). Not a subclass of it: DDP refuses ``nn.SyncBatchNorm`` layers in CPU modules."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group: Optional[Any] = None, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f'expected at least 2D input (got {input.dim()}D input)')

    def forward(self, input: Tensor) -> Tensor:
        distributed = self.training and dist.is_available() and dist.is_initialized()
        group = (self.process_group or dist.group.WORLD) if distributed else None
        if group is None or dist.get_world_size(group) == 1:  # eval mode or one process: plain BN, as nn.SyncBatchNorm
            return super().forward(input)
        self._check_input_dim(input)
        if input.size(1) == 0:
            raise ValueError('SyncBatchNorm number of input channels should be non-zero')
        x = input.float()
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        # per-channel sums in float64 (the element count of 8 processes' 713x713 maps exceeds float32's integers)
        count = torch.tensor([x.numel() // x.size(1)], dtype=torch.float64, device=x.device)
        sums = _AllReduceSum.apply(torch.cat([x.sum(dims, dtype=torch.float64), count]), group)
        total = sums[-1].detach()
        if total <= 1:
            raise ValueError(f'{type(self).__name__}: expected more than 1 value per channel over all processes in '
                             f'training, got input of size {tuple(input.shape)}')
        mean = sums[:-1] / total
        centred = x - mean.float().view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims, dtype=torch.float64), group) / total
        out = centred * torch.rsqrt(var + self.eps).float().view(shape)
        if self.affine:
            out = out * self.weight.float().view(shape) + self.bias.float().view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), total)
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, total: Tensor) -> None:
        """As ``nn.BatchNorm`` does: momentum (or a cumulative average when it is None) and the unbiased variance."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        unbiased = var * (total / (total - 1))
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Make every ``nn.SyncBatchNorm`` under ``module`` a ``CPUSyncBatchNorm`` by switching its class, so that
    parameters and buffers stay the objects an optimizer refers to; returns ``module``."""
    for sub in module.modules():
        if isinstance(sub, nn.SyncBatchNorm):  # also mmengine's subclass, which MMSegmentation's 'SyncBN' builds
            sub.__class__ = CPUSyncBatchNorm
    return module

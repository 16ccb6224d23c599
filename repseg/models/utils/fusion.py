"""The algebra of structural re-parameterization (RepVGG paper, section 3.3), free of any module layout."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm


def fuse_conv_bn(kernel: Tensor, bn: _BatchNorm) -> Tuple[Tensor, Tensor]:
    """Fold an eval-mode BN into the bias-free conv ``kernel`` that feeds it.

    Uses the BN *running* statistics, so the result equals the branch in eval mode, whatever mode the BN is in.
    """
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    return kernel * scale.reshape(-1, 1, 1, 1), beta - bn.running_mean * scale


def pad_1x1_to_3x3(kernel: Tensor) -> Tensor:
    """Zero-pad a 1x1 kernel to 3x3 with the tap at the centre; exact for any dilation of the 3x3 conv."""
    return F.pad(kernel, [1, 1, 1, 1])


def identity_kernel(channels: int, groups: int, like: Tensor) -> Tensor:
    """A 3x3 grouped kernel that maps every channel to itself: 1 at [i, i % (channels / groups), 1, 1]."""
    in_per_group = channels // groups
    kernel = torch.zeros(channels, in_per_group, 3, 3, dtype=like.dtype, device=like.device)
    idx = torch.arange(channels, device=like.device)
    kernel[idx, idx % in_per_group, 1, 1] = 1
    return kernel

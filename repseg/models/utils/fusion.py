"""The algebra of structural re-parameterization (RepVGG paper, section 3.3), free of any module layout."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def scale_shift(gamma: Tensor, beta: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tuple[Tensor, Tensor]:
    """An eval-mode BN as an affine map per channel: (gamma / sqrt(var + eps), beta - mean * scale)."""
    scale = gamma / (var + eps).sqrt()
    return scale, beta - mean * scale


def bn_scale_shift(bn: _BatchNorm) -> Tuple[Tensor, Tensor]:
    """``scale_shift`` of a BN module with its running statistics (gamma 1 and beta 0 when not affine)."""
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_var)
    return scale_shift(gamma, beta, bn.running_mean, bn.running_var, bn.eps)


def fuse_conv_bn(kernel: Tensor, bn: _BatchNorm) -> Tuple[Tensor, Tensor]:
    """Fold a BN's *running* statistics into the bias-free conv ``kernel`` that feeds it: the result equals the branch
    in eval mode, whatever mode the BN is in."""
    scale, shift = bn_scale_shift(bn)
    return kernel * scale.reshape(-1, *([1] * (kernel.dim() - 1))), shift


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


@torch.no_grad()
def fuse_conv_bn_pairs(model: nn.Module) -> int:
    """Fold every BN that directly follows a Conv2d (in registration order inside one parent, as in ResNet
    bottlenecks, stems, ``downsample`` Sequentials and ConvModules) into that conv; the BN becomes Identity.
    What the paper did to its ResNet baselines, and what the deploy form does to the PSP head. Returns the number of
    fused pairs."""
    fused = 0
    for parent in list(model.modules()):
        last_conv = None
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                last_conv = child
            elif isinstance(child, _BatchNorm) and last_conv is not None \
                    and last_conv.out_channels == child.num_features:
                kernel, bias = fuse_conv_bn(last_conv.weight, child)
                if last_conv.bias is not None:  # BN(Wx + b) = W'x + b' + scale * b
                    bias = bias + last_conv.bias * bn_scale_shift(child)[0]
                last_conv.weight.copy_(kernel)
                last_conv.bias = nn.Parameter(bias)
                setattr(parent, name, nn.Identity())
                last_conv = None
                fused += 1
            else:
                last_conv = None
    return fused

"""One RepVGG block: three branches for training, one 3x3 conv for deployment.

Attribute names follow the official RepVGG / RepVGGplus code (``rbr_dense``, ``rbr_1x1``, ``rbr_identity``,
``rbr_reparam``, each branch's ``conv`` and ``bn``; SE ``se.down`` / ``se.up``, post-SE ``post_se.down`` /
``post_se.up``) so that official checkpoints map key for key.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from torch import Tensor

from ..utils import fuse_conv_bn, identity_kernel, pad_1x1_to_3x3


class ConvBN(nn.Sequential):
    """A bias-free conv followed by a norm layer, stored as ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, groups: int, norm_cfg: dict):
        super().__init__()
        self.add_module('conv', nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                                          bias=False))
        self.add_module('bn', build_norm_layer(norm_cfg, out_channels)[1])


class SEBlock(nn.Module):
    """Squeeze-excitation as in RepVGG-D2se (reduction 16) and RepVGGplus (reduction 4), but pooling over the whole
    map: the official code pools with ``kernel_size=width``, which is wrong on non-square segmentation inputs.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.down = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.up = nn.Conv2d(channels // reduction, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        w = F.adaptive_avg_pool2d(x, 1)
        w = torch.sigmoid(self.up(F.relu(self.down(w))))
        return x * w


POST_SE_REDUCTION = 4  # RepVGGplus: SEBlock(channels, internal_neurons=channels // 4)


class RepVGGBlock(nn.Module):
    """ReLU(SE(BN(conv3x3 x) + BN(conv1x1 x) + BN(x))) in training, ReLU(SE(conv3x3' x)) after ``switch_to_deploy``;
    with ``use_post_se`` (RepVGGplus) a second SE follows the ReLU: post_SE(ReLU(...)).

    The 3x3 conv pads by its dilation; the 1x1 conv has dilation 1, no padding and the same stride and groups, so
    that its tap sits at the centre of the 3x3 kernel and the fusion stays exact at any dilation. Both SEs act on
    the fused sum or after it, so re-parameterization keeps them unchanged.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1, groups: int = 1,
                 use_se: bool = False, deploy: bool = False, norm_cfg: Optional[dict] = None, with_cp: bool = False,
                 use_post_se: bool = False):
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.deploy = deploy
        self.with_cp = with_cp
        self.nonlinearity = nn.ReLU()
        self.se = SEBlock(out_channels) if use_se else nn.Identity()
        self.post_se = SEBlock(out_channels, POST_SE_REDUCTION) if use_post_se else nn.Identity()
        if deploy:
            self.rbr_reparam = self._plain_conv()
        else:
            has_identity = in_channels == out_channels and stride == 1
            self.rbr_identity = build_norm_layer(norm_cfg, in_channels)[1] if has_identity else None
            self.rbr_dense = ConvBN(in_channels, out_channels, 3, stride, dilation, dilation, groups, norm_cfg)
            self.rbr_1x1 = ConvBN(in_channels, out_channels, 1, stride, 0, 1, groups, norm_cfg)

    def _plain_conv(self) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, 3, self.stride, self.dilation, self.dilation,
                         self.groups, bias=True)

    def _forward(self, x: Tensor) -> Tensor:
        if self.deploy:
            return self.post_se(self.nonlinearity(self.se(self.rbr_reparam(x))))
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.post_se(self.nonlinearity(self.se(out)))

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad and self.training:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def get_equivalent_kernel_bias(self) -> Tuple[Tensor, Tensor]:
        """The single 3x3 kernel and bias equal to the three branches in eval mode (differentiable)."""
        kernel, bias = fuse_conv_bn(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        k1x1, b1x1 = fuse_conv_bn(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)
        kernel, bias = kernel + pad_1x1_to_3x3(k1x1), bias + b1x1
        if self.rbr_identity is not None:
            kid, bid = fuse_conv_bn(identity_kernel(self.in_channels, self.groups, kernel), self.rbr_identity)
            kernel, bias = kernel + kid, bias + bid
        return kernel, bias

    def branch_kernels(self) -> Dict[str, Tensor]:
        """Each branch's share of the fused 3x3 kernel (eval mode; they sum to ``get_equivalent_kernel_bias``'s), so
        that range diagnostics can say which branch sets an outlier."""
        parts = {'dense_3x3': fuse_conv_bn(self.rbr_dense.conv.weight, self.rbr_dense.bn)[0],
                 '1x1': pad_1x1_to_3x3(fuse_conv_bn(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)[0])}
        if self.rbr_identity is not None:
            parts['identity'] = fuse_conv_bn(identity_kernel(self.in_channels, self.groups, parts['1x1']),
                                             self.rbr_identity)[0]
        return parts

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Replace the branches by one biased 3x3 conv computed from the BN running statistics. Idempotent."""
        if self.deploy:
            return
        kernel, bias = self.get_equivalent_kernel_bias()
        reparam = self._plain_conv().to(device=kernel.device, dtype=kernel.dtype)
        reparam.weight.copy_(kernel)
        reparam.bias.copy_(bias)
        reparam.train(self.training)
        for name in ('rbr_dense', 'rbr_1x1', 'rbr_identity'):
            delattr(self, name)
        self.rbr_reparam = reparam
        self.deploy = True

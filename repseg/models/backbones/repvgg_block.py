"""The RepVGG block: ReLU(SE(BN(conv3x3 x) + BN(conv1x1 x) + BN(x))) in training, ReLU(SE(conv3x3' x)) deployed.

Attribute names follow the official RepVGG / RepVGGplus code (``rbr_dense``, ``rbr_1x1``, ``rbr_identity``,
``rbr_reparam``, each branch's ``conv`` and ``bn``; SE ``se.down`` / ``se.up``, post-SE ``post_se.down`` /
``post_se.up``) so that official checkpoints map key for key.
"""
from typing import Optional

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from torch import Tensor

from ..utils import fuse_conv_bn, identity_kernel, pad_1x1_to_3x3
from .reparam_block import Branches, ReparamBlock


class ConvBN(nn.Sequential):
    """A bias-free conv followed by a norm layer, stored as ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, groups: int, norm_cfg: dict):
        super().__init__()
        self.add_module('conv', nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                                          bias=False))
        self.add_module('bn', build_norm_layer(norm_cfg, out_channels)[1])


class RepVGGBlock(ReparamBlock):
    """The paper's block; with ``use_post_se`` (RepVGGplus) a second SE follows the ReLU.

    The 3x3 conv pads by its dilation; the 1x1 conv has dilation 1, no padding and the same stride and groups, so
    that its tap sits at the centre of the 3x3 kernel and the fusion stays exact at any dilation. Both SEs act on
    the fused sum or after it, so re-parameterization keeps them unchanged.
    """

    TRAIN_MODULES = ('rbr_identity', 'rbr_dense', 'rbr_1x1')

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1, groups: int = 1,
                 use_se: bool = False, deploy: bool = False, norm_cfg: Optional[dict] = None, with_cp: bool = False,
                 use_post_se: bool = False):
        super().__init__(in_channels, out_channels, stride, dilation, groups, use_se, deploy, with_cp, use_post_se)
        if deploy:
            return
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        self.rbr_identity = build_norm_layer(norm_cfg, in_channels)[1] if self.has_identity else None
        self.rbr_dense = ConvBN(in_channels, out_channels, 3, stride, dilation, dilation, groups, norm_cfg)
        self.rbr_1x1 = ConvBN(in_channels, out_channels, 1, stride, 0, 1, groups, norm_cfg)

    def branch_sum(self, x: Tensor) -> Tensor:
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        return out + self.rbr_identity(x) if self.rbr_identity is not None else out

    def branches(self) -> Branches:
        """Each branch's conv with its own BN folded in; the identity is a one-tap kernel through its BN."""
        k1, b1 = fuse_conv_bn(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)
        parts = {'dense_3x3': fuse_conv_bn(self.rbr_dense.conv.weight, self.rbr_dense.bn),
                 '1x1': (pad_1x1_to_3x3(k1), b1)}
        if self.rbr_identity is not None:
            parts['identity'] = fuse_conv_bn(identity_kernel(self.in_channels, self.groups, k1), self.rbr_identity)
        return parts

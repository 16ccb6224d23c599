"""The quantization-friendly RepVGG block (QARepVGG, Chu et al., AAAI 2024).

RepVGG's identity BN gives near-dead channels huge scales (up to about 1477 in the paper) that int8 cannot represent;
QARepVGG drops the identity and 1x1 BNs for one BN after the sum. Train-time keys follow YOLOv6's ``QARepVGGBlock``,
but the BN comes before SE, so that it folds into the deploy conv exactly.
"""
import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from torch import Tensor

from ..utils import bn_scale_shift, fuse_conv_bn, identity_kernel, pad_1x1_to_3x3
from .reparam_block import Branches, ReparamBlock


class QARepVGGBlock(ReparamBlock):
    """ReLU(SE(BN_post(BN(conv3x3 x) + conv1x1 x + x))) in training, ReLU(SE(conv3x3' x)) after ``switch_to_deploy``;
    ``use_post_se`` (RepVGGplus) adds its SE after the ReLU."""

    TRAIN_MODULES = ('rbr_identity', 'rbr_dense', 'rbr_1x1', 'bn')

    def build_branches(self, norm_cfg: dict) -> None:
        self.rbr_identity = nn.Identity() if self.has_identity else None
        self.rbr_dense = self.conv_bn(3, norm_cfg)
        self.rbr_1x1 = nn.Conv2d(self.in_channels, self.out_channels, 1, self.stride, 0, 1, self.groups, bias=False)
        self.bn = build_norm_layer(norm_cfg, self.out_channels)[1]

    def branch_sum(self, x: Tensor) -> Tensor:
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        return self.bn(out + self.rbr_identity(x) if self.rbr_identity is not None else out)

    def branches(self) -> Branches:
        """BN_post(k x + b) = s k x + (s b + shift): BN_post's scale s multiplies every branch (the 1x1 and the
        identity have no BN of their own), and its shift rides on the dense branch's bias."""
        scale, shift = bn_scale_shift(self.bn)
        post = scale.reshape(-1, 1, 1, 1)
        k3, b3 = fuse_conv_bn(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        k1 = pad_1x1_to_3x3(self.rbr_1x1.weight)
        zero = torch.zeros_like(shift)
        parts = {'dense_3x3': (k3 * post, b3 * scale + shift), '1x1': (k1 * post, zero)}
        if self.rbr_identity is not None:
            parts['identity'] = (identity_kernel(self.in_channels, self.groups, k1) * post, zero)
        return parts

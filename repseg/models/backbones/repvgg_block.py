"""The RepVGG block: ReLU(SE(BN(conv3x3 x) + BN(conv1x1 x) + BN(x))) in training, ReLU(SE(conv3x3' x)) deployed.

Attribute names follow the official RepVGG / RepVGGplus code (``rbr_dense``, ``rbr_1x1``, ``rbr_identity``,
``rbr_reparam``, each branch's ``conv`` and ``bn``; SE ``se.down`` / ``se.up``, post-SE ``post_se.down`` /
``post_se.up``) so that official checkpoints map key for key.
"""
from mmcv.cnn import build_norm_layer
from torch import Tensor

from ..utils import fuse_conv_bn, identity_kernel, pad_1x1_to_3x3
from .reparam_block import Branches, ReparamBlock


class RepVGGBlock(ReparamBlock):
    """The paper's block; with ``use_post_se`` (RepVGGplus) a second SE follows the ReLU."""

    TRAIN_MODULES = ('rbr_identity', 'rbr_dense', 'rbr_1x1')

    def build_branches(self, norm_cfg: dict) -> None:
        self.rbr_identity = build_norm_layer(norm_cfg, self.in_channels)[1] if self.has_identity else None
        self.rbr_dense = self.conv_bn(3, norm_cfg)
        self.rbr_1x1 = self.conv_bn(1, norm_cfg)

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

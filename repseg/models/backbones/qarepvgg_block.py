"""The quantization-friendly RepVGG block (QARepVGG, Chu et al., AAAI 2024).

RepVGG's identity BN gives near-dead channels huge per-channel scales (up to about 1477 in the paper's analysis) and
the fused kernel inherits them, which is what int8 post-training quantization cannot represent. QARepVGG removes the
BN from the identity and the 1x1 branches and puts one BN after the sum, so the fused kernel's scale is that of a
single, ordinary BN.

It is a ``RepVGGBlock`` so that ``repseg.reparameterize``, the backbone's ``deploy`` property and every deploy tool
treat it as one. Its deploy form is RepVGGBlock's: one biased 3x3 ``rbr_reparam`` conv, the post-sum BN folded in,
with identical state-dict keys. Train-form keys follow YOLOv6's ``QARepVGGBlock``: ``rbr_dense.{conv,bn}``,
``rbr_1x1.weight`` (a bare conv), ``bn`` (the post-sum BN); the identity has no parameters.

One deliberate difference from YOLOv6: there, SE sits between the sum and the BN and the BN stays in the deploy form
(for quantization-aware training). Here the BN comes first and SE acts, as in RepVGGBlock, on the pre-activation
before the ReLU, so that the BN folds into the conv exactly and the deploy form is one conv.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from torch import Tensor

from ..utils import fuse_conv_bn, identity_kernel, pad_1x1_to_3x3
from .repvgg_block import RepVGGBlock


class QARepVGGBlock(RepVGGBlock):
    """ReLU(SE(BN_post(BN(conv3x3 x) + conv1x1 x + x))) in training, ReLU(SE(conv3x3' x)) after ``switch_to_deploy``.

    The identity exists only where channels and stride are unchanged, as in RepVGGBlock. Takes RepVGGBlock's
    constructor arguments; ``use_post_se`` (RepVGGplus) adds its SE after the ReLU, untouched by the fusion.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1, groups: int = 1,
                 use_se: bool = False, deploy: bool = False, norm_cfg: Optional[dict] = None, with_cp: bool = False,
                 use_post_se: bool = False):
        super().__init__(in_channels, out_channels, stride, dilation, groups, use_se, deploy, norm_cfg, with_cp,
                         use_post_se=use_post_se)
        if deploy:
            return
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        # replace RepVGGBlock's BN-carrying 1x1 and identity branches; rbr_dense (3x3 conv + BN) is kept as built
        self.rbr_1x1 = nn.Conv2d(in_channels, out_channels, 1, stride, 0, 1, groups, bias=False)
        if self.rbr_identity is not None:
            self.rbr_identity = nn.Identity()
        self.bn = build_norm_layer(norm_cfg, out_channels)[1]

    def _forward(self, x: Tensor) -> Tensor:
        if self.deploy:
            return super()._forward(x)
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.post_se(self.nonlinearity(self.se(self.bn(out))))

    def get_equivalent_kernel_bias(self) -> Tuple[Tensor, Tensor]:
        """The single 3x3 kernel and bias equal to the block before SE/ReLU in eval mode (differentiable)."""
        kernel, bias = fuse_conv_bn(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        kernel = kernel + pad_1x1_to_3x3(self.rbr_1x1.weight)
        if self.rbr_identity is not None:
            kernel = kernel + identity_kernel(self.in_channels, self.groups, kernel)
        # BN_post(k * x + b) = s * k * x + (s * b + shift): fold it like a BN after a conv, and the bias, a
        # one-tap kernel per output channel, is scaled the same way
        kernel, shift = fuse_conv_bn(kernel, self.bn)
        scaled_bias, _ = fuse_conv_bn(bias.reshape(-1, 1, 1, 1), self.bn)
        return kernel, shift + scaled_bias.flatten()

    def branch_kernels(self) -> Dict[str, Tensor]:
        """Each branch's share of the fused kernel: BN_post's scale multiplies all of them (the 1x1 and identity have
        no BN of their own)."""
        post = fuse_conv_bn(torch.ones_like(self.bn.running_var).reshape(-1, 1, 1, 1), self.bn)[0]
        parts = {'dense_3x3': fuse_conv_bn(self.rbr_dense.conv.weight, self.rbr_dense.bn)[0],
                 '1x1': pad_1x1_to_3x3(self.rbr_1x1.weight)}
        if self.rbr_identity is not None:
            parts['identity'] = identity_kernel(self.in_channels, self.groups, parts['1x1'])
        return {name: kernel * post for name, kernel in parts.items()}

    def switch_to_deploy(self) -> None:
        """One biased 3x3 conv with BN_post folded in (BN running statistics), as RepVGGBlock. Idempotent."""
        if self.deploy:
            return
        super().switch_to_deploy()
        del self.bn

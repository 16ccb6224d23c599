"""What every RepVGG-family block shares, and the protocol that converts any of them into one biased 3x3 conv: as in
timm's ``reparameterize()``, found by name, not class (``branches()`` and ``switch_to_deploy()``). The fused kernel
is the sum of ``branches()``, so the diagnostics read exactly what the conversion adds up.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from torch import Tensor

Branches = Dict[str, Tuple[Tensor, Tensor]]
POST_SE_REDUCTION = 4  # RepVGGplus: SEBlock(channels, internal_neurons=channels // 4)
SE_REDUCTION = 16  # RepVGG-D2se


class ConvBN(nn.Sequential):
    """A bias-free conv followed by a norm layer, stored as ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, groups: int, norm_cfg: dict):
        super().__init__()
        self.add_module('conv', nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                                          bias=False))
        self.add_module('bn', build_norm_layer(norm_cfg, out_channels)[1])


class SEBlock(nn.Module):
    """Squeeze-excitation pooling the whole map (the official ``kernel_size=width`` is wrong on non-square inputs)."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        self.down = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.up = nn.Conv2d(channels // reduction, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.up(F.relu(self.down(F.adaptive_avg_pool2d(x, 1)))))


class ReparamBlock(nn.Module):
    """post_SE(ReLU(SE(pre-activation))), the pre-activation being the branches' sum, or one biased 3x3 conv after
    ``switch_to_deploy``; subclasses implement ``build_branches`` (``TRAIN_MODULES``), ``branch_sum``, ``branches``."""

    #: The attributes that hold train-time branches; ``switch_to_deploy`` deletes them.
    TRAIN_MODULES: Tuple[str, ...] = ()

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1, groups: int = 1,
                 use_se: bool = False, deploy: bool = False, norm_cfg: Optional[dict] = None, with_cp: bool = False,
                 use_post_se: bool = False):
        super().__init__()
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
            self.build_branches(norm_cfg or dict(type='BN', requires_grad=True))

    @property
    def has_identity(self) -> bool:
        """The identity branch exists only where channels and stride are unchanged."""
        return self.in_channels == self.out_channels and self.stride == 1

    def conv_bn(self, kernel_size: int, norm_cfg: dict) -> ConvBN:
        """A 3x3 branch (padded by its dilation) or a 1x1 branch (dilation 1, no padding): both with the block's
        stride and groups, so that the 1x1 tap sits at the 3x3 kernel's centre at any dilation."""
        dilation = self.dilation if kernel_size == 3 else 1
        return ConvBN(self.in_channels, self.out_channels, kernel_size, self.stride, dilation * (kernel_size // 2),
                      dilation, self.groups, norm_cfg)

    def _plain_conv(self) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, 3, self.stride, self.dilation, self.dilation,
                         self.groups, bias=True)

    def build_branches(self, norm_cfg: dict) -> None:
        raise NotImplementedError

    def branch_sum(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def branches(self) -> Branches:
        """Each train-form branch as the (3x3 kernel, bias) it adds to the deploy conv in eval mode."""
        raise NotImplementedError

    def _forward(self, x: Tensor) -> Tensor:
        out = self.rbr_reparam(x) if self.deploy else self.branch_sum(x)
        return self.post_se(self.nonlinearity(self.se(out)))

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad and self.training:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def get_equivalent_kernel_bias(self) -> Tuple[Tensor, Tensor]:
        """The single 3x3 kernel and bias equal to the branches in eval mode: their sum (differentiable)."""
        kernels, biases = zip(*self.branches().values())
        return sum(kernels[1:], kernels[0]), sum(biases[1:], biases[0])

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
        for name in self.TRAIN_MODULES:
            if hasattr(self, name):
                delattr(self, name)
        self.rbr_reparam = reparam
        self.deploy = True


def is_reparameterizable(module: nn.Module) -> bool:
    """Whether ``module`` follows the block protocol (module docstring)."""
    return callable(getattr(module, 'branches', None)) and callable(getattr(module, 'switch_to_deploy', None))


def reparameterize(model: nn.Module) -> nn.Module:
    """Convert every re-parameterizable block inside ``model`` in place, fusing BN *running* statistics (equal in eval
    mode, also when called in train mode or with SyncBN); returns ``model``."""
    for module in list(model.modules()):
        if is_reparameterizable(module):
            module.switch_to_deploy()
    return model

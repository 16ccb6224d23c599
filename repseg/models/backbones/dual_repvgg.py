"""DualRepVGG: RepVGG blocks in two branches, a detail branch that stays at 1/8 of the input and a context branch
that goes down to 1/32, exchanging features after each stage (the dual-resolution layout of DDRNet and RDRNet).

Built for a CPU: every block is a RepVGG block, so the deploy form is a plain stack of biased 3x3 convs + ReLU (the
kernels a CPU runs best, int8 included), and the multiply-adds sit at 1/8 and below, where the channel counts fill
the vector units. The exchanges are a 1x1 conv + BN (context -> detail, then upsampled and added) and a strided 3x3
conv + BN (detail -> context); the context branch ends with a global-pooling context added before it joins the
detail branch. ``switch_to_deploy`` (or ``repseg.reparameterize``) fuses the blocks in place, as in ``RepVGG``.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from .reparam_block import is_reparameterizable, reparameterize
from .repvgg import BLOCKS

#: widths: stem (1/2), 1/4, detail (1/8), context at 1/16 and 1/32; blocks: at 1/4, at 1/8 before the split, then per
#: dual stage (each branch).
DUAL_ARCHS: Dict[str, dict] = {
    's': dict(widths=(32, 64, 128, 256, 512), trunk_blocks=(1, 2), dual_blocks=(2, 2)),
    'm': dict(widths=(32, 64, 128, 256, 768), trunk_blocks=(1, 3), dual_blocks=(3, 3)),
}


@MODELS.register_module()
class DualRepVGG(BaseModule):
    """Dual-resolution RepVGG backbone for real-time segmentation.

    Args:
        arch: 's', 'm', or a dict with ``widths`` (5: stem, 1/4, detail, context 1/16, context 1/32),
            ``trunk_blocks`` (blocks at 1/4 and at 1/8 before the split) and ``dual_blocks`` (blocks of each branch in
            each of the two dual stages; the context branch's first block of a stage has stride 2).
        out_indices: 0, the detail branch after the first dual stage (for an auxiliary head), and/or 1, the output
            (detail + upsampled context, at 1/8, ``widths[2]`` channels).
        block: 'repvgg' or 'qarepvgg'.
        deploy: build the plain re-parameterized form directly.
        norm_eval: keep every BN in eval mode while training.
    """

    def __init__(self, arch: Union[str, dict] = 's', out_indices: Sequence[int] = (0, 1), block: str = 'repvgg',
                 deploy: bool = False, norm_cfg: Optional[dict] = None, norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg)
        if isinstance(arch, str):
            if arch not in DUAL_ARCHS:
                raise ValueError(f'DualRepVGG arch={arch!r}: expected one of {", ".join(DUAL_ARCHS)} or a dict')
            arch = DUAL_ARCHS[arch]
        widths, trunk, dual = tuple(arch['widths']), tuple(arch['trunk_blocks']), tuple(arch['dual_blocks'])
        if len(widths) != 5 or len(trunk) != 2 or len(dual) != 2 or min(trunk[1], *dual) < 1 or trunk[0] < 0:
            raise ValueError(f'DualRepVGG arch={arch}: expected 5 widths, 2 trunk_blocks (the second >= 1) and 2 '
                             f'dual_blocks (>= 1)')
        if not set(out_indices) <= {0, 1} or not out_indices:
            raise ValueError(f'DualRepVGG out_indices={tuple(out_indices)}: expected 0 and/or 1')
        if block not in BLOCKS:
            raise ValueError(f'DualRepVGG block={block!r}: expected one of {", ".join(BLOCKS)}')
        self.arch, self.out_indices, self.norm_eval = dict(arch), tuple(out_indices), norm_eval
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)

        def blocks(cin: int, cout: int, count: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(*(BLOCKS[block](cin if i == 0 else cout, cout, stride if i == 0 else 1,
                                                 deploy=deploy, norm_cfg=norm_cfg) for i in range(count)))
        stem, quarter, detail, mid, low = widths
        self.stem = nn.Sequential(*blocks(3, stem, 1, 2), *blocks(stem, quarter, 1, 2))
        self.trunk = nn.Sequential(*blocks(quarter, quarter, trunk[0]), *blocks(quarter, detail, trunk[1], 2))
        self.detail = nn.ModuleList([blocks(detail, detail, n) for n in dual])
        self.context = nn.ModuleList([blocks(detail, mid, dual[0], 2), blocks(mid, low, dual[1], 2)])
        conv_bn = dict(norm_cfg=norm_cfg, act_cfg=None)
        self.up = nn.ModuleList([ConvModule(c, detail, 1, **conv_bn) for c in (mid, low)])
        self.down = ConvModule(detail, mid, 3, stride=2, padding=1, **conv_bn)
        self.global_context = ConvModule(low, low, 1, **conv_bn)
        self.relu = nn.ReLU()

    @property
    def deploy(self) -> bool:
        """True once every block is in its plain form."""
        return all(block.deploy for block in self.modules() if is_reparameterizable(block))

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self.trunk(self.stem(x))
        detail, context, outs = x, x, []
        for i in range(2):
            detail = self.detail[i](detail)
            context = self.context[i](context)
            if i == 1:  # global context before the last exchange: a 1 x 1 map broadcast over the branch
                context = self.relu(context + self.global_context(F.adaptive_avg_pool2d(context, 1)))
            up = F.interpolate(self.up[i](context), size=detail.shape[2:], mode='bilinear', align_corners=False)
            if i == 0:
                context = self.relu(context + self.down(detail))
            detail = self.relu(detail + up)
            outs.append(detail)
        return tuple(outs[i] for i in self.out_indices)

    def train(self, mode: bool = True) -> 'DualRepVGG':
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def switch_to_deploy(self) -> None:
        """Fuse every block in place (the exchanges' conv + BN stay, as a head's do)."""
        reparameterize(self)

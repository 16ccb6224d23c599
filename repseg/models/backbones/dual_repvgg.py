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
    't': dict(widths=(32, 64, 64, 192, 384), trunk_blocks=(0, 2), dual_blocks=(2, 2)),
    's': dict(widths=(32, 64, 96, 192, 384), trunk_blocks=(0, 2), dual_blocks=(2, 2)),
    'm': dict(widths=(32, 64, 128, 256, 512), trunk_blocks=(0, 2), dual_blocks=(2, 2)),
}


def dual_block_widths(arch: dict) -> List[int]:
    """Every block's output channels in build order: the two stem blocks, the trunk (at 1/4, then 1/8), the detail
    branch's stages, then the context branch's. ``arch['block_widths']`` (what ``tools/prune.py`` writes) lists them;
    otherwise ``widths`` gives each part's."""
    stem, quarter, detail, mid, low = arch['widths']
    (quarter_blocks, eighth_blocks), dual = arch['trunk_blocks'], tuple(arch['dual_blocks'])
    default = ([stem, quarter] + [quarter] * quarter_blocks + [detail] * (eighth_blocks + sum(dual))
               + [mid] * dual[0] + [low] * dual[1])
    listed = arch.get('block_widths')
    if listed is None:
        return default
    if len(listed) != len(default) or min(listed) < 1:
        raise ValueError(f'DualRepVGG arch block_widths has {len(listed)} entries: expected {len(default)} positive '
                         f'widths (stem 2, trunk {quarter_blocks} + {eighth_blocks}, detail {dual[0]} + {dual[1]}, '
                         f'context {dual[0]} + {dual[1]})')
    return [int(w) for w in listed]


def dual_out_channels(arch: dict) -> List[int]:
    """Channels of outputs 0 and 1: the detail branch's width at the end of each dual stage."""
    widths, dual = dual_block_widths(arch), tuple(arch['dual_blocks'])
    first = len(widths) - 2 * sum(dual)  # the detail branch's first block
    return [widths[first + dual[0] - 1], widths[first + sum(dual) - 1]]


@MODELS.register_module()
class DualRepVGG(BaseModule):
    """Dual-resolution RepVGG backbone for real-time segmentation.

    Args:
        arch: 't', 's', 'm', or a dict with ``widths`` (5: stem, 1/4, detail, context 1/16, context 1/32),
            ``trunk_blocks`` (blocks at 1/4 and at 1/8 before the split) and ``dual_blocks`` (blocks of each branch in
            each of the two dual stages; the context branch's first block of a stage has stride 2); optionally
            ``block_widths``, every block's width (``dual_block_widths``: a pruned network).
        out_indices: 0, the detail branch after the first dual stage (for an auxiliary head), and/or 1, the output
            (detail + upsampled context, at 1/8, ``widths[2]`` channels unless pruned).
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
        widths = iter(dual_block_widths(arch))
        cin = 3

        def blocks(count: int, stride: int = 1, cin_: Optional[int] = None) -> nn.Sequential:
            nonlocal cin
            cin = cin if cin_ is None else cin_
            out = []
            for i in range(count):
                cout = next(widths)
                out.append(BLOCKS[block](cin, cout, stride if i == 0 else 1, deploy=deploy, norm_cfg=norm_cfg))
                cin = cout
            return nn.Sequential(*out)
        self.stem = nn.Sequential(*blocks(1, 2), *blocks(1, 2))
        self.trunk = nn.Sequential(*blocks(trunk[0]), *blocks(trunk[1], 2))
        split = cin
        self.detail = nn.ModuleList([blocks(n, cin_=split if i == 0 else None) for i, n in enumerate(dual)])
        detail_ends = [stage[-1].out_channels for stage in self.detail]
        self.context = nn.ModuleList([blocks(n, 2, cin_=split if i == 0 else None) for i, n in enumerate(dual)])
        context_ends = [stage[-1].out_channels for stage in self.context]
        conv_bn = dict(norm_cfg=norm_cfg, act_cfg=None)
        self.up = nn.ModuleList([ConvModule(c, d, 1, **conv_bn) for c, d in zip(context_ends, detail_ends)])
        self.down = ConvModule(detail_ends[0], context_ends[0], 3, stride=2, padding=1, **conv_bn)
        self.global_context = ConvModule(context_ends[1], context_ends[1], 1, **conv_bn)
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

    def blocks(self) -> List[nn.Module]:
        """The re-parameterizable blocks in ``block_widths`` order."""
        return [b for part in (self.stem, self.trunk, *self.detail, *self.context) for b in part]

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

"""RepVGG backbone for MMSegmentation: multi-branch for training, plain 3x3 conv stack after re-parameterization."""
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from .arch_zoo import NUM_STAGES, block_specs, resolve_arch, stage_channels
from .qarepvgg_block import QARepVGGBlock
from .reparam_block import ReparamBlock, is_reparameterizable, reparameterize
from .repvgg_block import RepVGGBlock

BLOCKS = {'repvgg': RepVGGBlock, 'qarepvgg': QARepVGGBlock}  # the `block` argument
#: The weight initializer (mmengine's WEIGHT_INITIALIZERS) that ``repseg.checkpoint`` registers under this name: it
#: reads official, mmpretrain and timm files, fuses train-form files into a deploy backbone and loads strictly.
PRETRAINED_INIT = 'RepSegPretrained'


@MODELS.register_module()
class RepVGG(BaseModule):
    """RepVGG (Ding et al., CVPR 2021) and RepVGGplus with dilation support for dense prediction.

    Modules are named as in the official RepVGG code (``stage0`` is one block, ``stage1``-``stage4`` are
    Sequentials), so an official checkpoint without its ``linear`` classifier loads key for key; RepVGGplus files
    (``stageN.blocks.i``, stage 3 split in two) are mapped onto the same names by ``repseg.checkpoint``.

    Args:
        arch: 'A0' ... 'D2se' (or 'RepVGG-B2'), 'L2pse' (or 'RepVGGplus-L2pse'), or a dict with ``num_blocks``,
            ``width_factor`` (4 entries each) and optionally ``group_layer_map`` ({global layer index: groups}),
            ``use_se`` (SE before the ReLU, reduction 16), ``use_post_se`` (SE after the ReLU, reduction 4) and
            ``widths`` (every block's output channels, stem first: what ``tools/prune.py`` writes).
        out_indices: stages to return, 0 (the stem block) to 4.
        strides, dilations: per stage 0-4; PSPNet uses strides (2, 2, 2, 1, 1), dilations (1, 1, 1, 2, 4).
        fast: dilate only the last 5 blocks of the network (the paper's "fast" segmentation variants).
        deploy: build the plain re-parameterized form directly.
        frozen_stages: freeze stages 0..frozen_stages (-1: none), parameters and BN statistics.
        norm_eval: keep every BN in eval mode while training (its statistics frozen).
        with_cp: gradient checkpointing per block, trading compute for memory.
        block: 'repvgg' (the paper's block) or 'qarepvgg' (QARepVGG: no BN on the identity and 1x1 branches, one BN
            after the sum; quantizes well, same deploy form and keys). Standard RepVGG files load into either: into
            'qarepvgg' through ``repseg.checkpoint.qarepvgg_init``, computing the same function in eval mode.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'A0',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (1, 2, 3, 4),
                 strides: Sequence[int] = (2, 2, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1, 1),
                 fast: bool = False,
                 deploy: bool = False,
                 frozen_stages: int = -1,
                 norm_cfg: Optional[dict] = None,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 block: str = 'repvgg',
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[dict, list]] = None):
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('RepVGG: pass either pretrained or init_cfg, not both')
            warnings.warn('RepVGG: `pretrained` is deprecated, use init_cfg=dict(type="Pretrained", checkpoint=...)')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        if init_cfg is None:
            init_cfg = [dict(type='Kaiming', layer='Conv2d'),
                        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]
        super().__init__(init_cfg=init_cfg)
        self.arch = arch
        self.arch_settings = resolve_arch(arch)
        self.out_indices = tuple(out_indices)
        bad = [i for i in self.out_indices if not isinstance(i, int) or not 0 <= i < NUM_STAGES]
        if bad or not self.out_indices:
            raise ValueError(f'RepVGG out_indices={self.out_indices}: expected a non-empty subset of 0-4 '
                             f'(0 = stem block, 4 = last stage)')
        if not -1 <= frozen_stages < NUM_STAGES:
            raise ValueError(f'RepVGG frozen_stages={frozen_stages}: expected -1 (none) to 4')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.channels = stage_channels(self.arch_settings)

        if block not in BLOCKS:
            raise ValueError(f'RepVGG block={block!r}: expected one of {", ".join(map(repr, BLOCKS))}')
        self.block_type = block
        specs = block_specs(self.arch_settings, in_channels, strides, dilations, fast)
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)

        def make(spec) -> ReparamBlock:
            return BLOCKS[block](spec.in_channels, spec.out_channels, spec.stride, spec.dilation, spec.groups,
                                 spec.use_se, deploy, norm_cfg, with_cp, use_post_se=spec.use_post_se)

        self.stage0 = make(specs[0][0])
        for stage in range(1, NUM_STAGES):
            self.add_module(f'stage{stage}', nn.Sequential(*[make(s) for s in specs[stage]]))
        self._freeze_stages()

    @property
    def deploy(self) -> bool:
        """Whether every block is in its plain (re-parameterized) form."""
        return all(block.deploy for block in self.modules() if is_reparameterizable(block))

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        outs = []
        for stage in range(NUM_STAGES):
            x = getattr(self, f'stage{stage}')(x)
            if stage in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        for stage in range(self.frozen_stages + 1):
            module = getattr(self, f'stage{stage}')
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'RepVGG':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self) -> None:
        """``Pretrained`` init_cfg entries go, as one ``PRETRAINED_INIT`` entry applied last (as mmengine applies
        Pretrained last), through RepSeg's loader (registered by ``repseg.checkpoint``); other inits as usual."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg] if self.init_cfg else []
        pretrained = [cfg for cfg in cfgs if cfg.get('type') == 'Pretrained']
        if not pretrained:
            return super().init_weights()
        full_cfg = self.init_cfg
        self.init_cfg = ([cfg for cfg in cfgs if cfg.get('type') != 'Pretrained']
                         + [dict(pretrained[-1], type=PRETRAINED_INIT)])
        try:
            super().init_weights()
        finally:
            self.init_cfg = full_cfg

    def switch_to_deploy(self) -> None:
        """Re-parameterize every block in place (uses the BN running statistics)."""
        reparameterize(self)

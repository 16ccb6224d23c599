from .arch_zoo import ARCH_SETTINGS, BlockSpec, block_specs, resolve_arch, stage_channels
from .qarepvgg_block import QARepVGGBlock
from .repvgg import RepVGG
from .repvgg_block import RepVGGBlock, SEBlock

__all__ = ['ARCH_SETTINGS', 'BlockSpec', 'block_specs', 'resolve_arch', 'stage_channels', 'QARepVGGBlock', 'RepVGG',
           'RepVGGBlock', 'SEBlock']

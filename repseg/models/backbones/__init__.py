from .arch_zoo import ARCH_SETTINGS, BlockSpec, block_specs, resolve_arch, stage_channels
from .dual_repvgg import DUAL_ARCHS, DualRepVGG, dual_block_widths, dual_out_channels
from .qarepvgg_block import QARepVGGBlock
from .reparam_block import ReparamBlock, SEBlock, is_reparameterizable, reparameterize
from .repvgg import PRETRAINED_INIT, RepVGG
from .repvgg_block import RepVGGBlock

__all__ = ['ARCH_SETTINGS', 'BlockSpec', 'DUAL_ARCHS', 'DualRepVGG', 'PRETRAINED_INIT', 'QARepVGGBlock', 'RepVGG',
           'RepVGGBlock', 'ReparamBlock', 'SEBlock', 'block_specs', 'dual_block_widths', 'dual_out_channels',
           'is_reparameterizable', 'reparameterize', 'resolve_arch', 'stage_channels']

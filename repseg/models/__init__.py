from .backbones import QARepVGGBlock, RepVGG, RepVGGBlock
from .custom_l2 import CustomL2OptimWrapperConstructor, custom_l2
from .reparameterize import reparameterize

__all__ = ['CustomL2OptimWrapperConstructor', 'QARepVGGBlock', 'RepVGG', 'RepVGGBlock', 'custom_l2', 'reparameterize']

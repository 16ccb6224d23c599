from .backbones import RepVGG, RepVGGBlock
from .reparameterize import reparameterize

__all__ = ['RepVGG', 'RepVGGBlock', 'reparameterize']

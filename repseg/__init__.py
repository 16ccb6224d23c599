"""RepSeg: semantic segmentation with RepVGG backbones on MMSegmentation 1.x.

Importing it makes MMSegmentation usable on mmcv-lite (see ``repseg.mmcv_compat``) and registers RepSeg's modules
in MMSegmentation's registries.
"""
from . import mmcv_compat

mmcv_compat.install()

from .models import RepVGG, RepVGGBlock, reparameterize  # noqa: E402  (after the compat layer, on purpose)
from .version import __version__  # noqa: E402

__all__ = ['RepVGG', 'RepVGGBlock', 'reparameterize', '__version__']

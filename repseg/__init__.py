"""RepSeg: semantic segmentation with RepVGG backbones on MMSegmentation 1.x.

Importing it makes MMSegmentation usable on mmcv-lite (see ``repseg.mmcv_compat``) and registers RepSeg's modules
in MMSegmentation's registries.
"""
import warnings

# mmengine 0.10.7 resolves `mmseg::` configs through pkg_resources (hence setuptools<81): its deprecation is noise.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from . import mmcv_compat  # noqa: E402

mmcv_compat.install()

from . import datasets, evaluation  # noqa: E402,F401  (registers transforms and metrics)
from .models import RepVGG, RepVGGBlock, reparameterize  # noqa: E402  (after the compat layer, on purpose)
from .version import __version__  # noqa: E402

__all__ = ['RepVGG', 'RepVGGBlock', 'reparameterize', '__version__']

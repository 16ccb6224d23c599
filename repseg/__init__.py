"""RepSeg: semantic segmentation with RepVGG backbones on MMSegmentation 1.x.

Importing it makes MMSegmentation usable on mmcv-lite (see ``repseg.mmcv_compat``) and registers RepSeg's modules
in MMSegmentation's registries.
"""
import warnings

import torch

from .version import check_torch

check_torch(torch.__version__)

# mmengine 0.10.7 resolves `mmseg::` configs through pkg_resources (hence setuptools<81): its deprecation is noise.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
# MMSegmentation 1.2.2's own heads call its deprecated `build_loss`; nothing a config or a user can change.
warnings.filterwarnings('ignore', message='``build_loss`` would be deprecated soon', category=UserWarning)
# MMSegmentation warns whenever avg_non_ignore is False, also when a config chooses it: RepSeg's configs do, on purpose
# (configs/_base_/models/pspnet_repvgg.py says why).
warnings.filterwarnings('ignore', message='Default ``avg_non_ignore`` is False', category=UserWarning)
# MMSegmentation's default_runtime adds a SegVisualizationHook that warns, at every start, that it draws nothing
# (tools/test.py --show-dir switches drawing on).
warnings.filterwarnings('ignore', message='The draw is False, it means that the hook for visualization',
                        category=UserWarning)

from . import mmcv_compat  # noqa: E402

mmcv_compat.install()

# after the compat layer, on purpose: registers transforms, metrics, the backbone, the pretrained initializer and the
# checkpoint hook the configs name (AtomicCheckpointHook)
from . import checkpoint, datasets, evaluation  # noqa: E402,F401
from .engine import checkpoint_hook  # noqa: E402,F401
from .models import QARepVGGBlock, RepVGG, RepVGGBlock, custom_l2, reparameterize  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ['QARepVGGBlock', 'RepVGG', 'RepVGGBlock', 'custom_l2', 'reparameterize', '__version__']

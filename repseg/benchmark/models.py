"""The benchmarked segmentors in train, deploy or baseline form, with seeded weights (speed does not depend on the
values) and calibrated BN statistics: uncalibrated random nets shrink or blow up, and tiny values turn into slow
denormals on CPUs."""
import os.path as osp
from typing import Any, Dict, List, Tuple

import torch
from mmengine.config import Config
from mmseg.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from repseg.apis import init_segmentor, model_config
from repseg.models import SegLogits, reparameterize
from repseg.models.utils import fuse_conv_bn_pairs
from repseg.quantization.folder import FOLDER_FILES
from repseg.quantization.segmentor import SEGMENTOR_TYPE
from repseg.runtime import FOLDER_FORMS, get_runtime
from .int8 import INT8_RUNTIME

#: The forms ``to_form`` builds; a tools/quantize.py folder (DIR/int8_config.py + DIR/int8.pth, or bf16_...) is
#: measured as it is, its form being its precision (``FOLDER_FORMS``).
FORMS = ('train', 'deploy', 'baseline')
#: The precisions a row can compute in, the reference first.
PRECISIONS = ('fp32', 'bf16', 'int8')
#: A folder's config file name -> its form.
FOLDER_CONFIGS = {files[0]: form for form, files in FOLDER_FILES.items()}

#: The default line-up: the paper's four RepVGG PSPNets (Table 8) and MMSegmentation's ResNet PSPNets.
DEFAULT_CONFIGS = (
    'configs/pspnet_repvgg_b1g2_fast.py',
    'configs/pspnet_repvgg_b1g2.py',
    'configs/pspnet_repvgg_b2_fast.py',
    'configs/pspnet_repvgg_b2.py',
    'configs/baselines/pspnet_r50-d8_cityscapes_713x713.py',
    'configs/baselines/pspnet_r101-d8_cityscapes_713x713.py',
)


def model_name(config: str) -> str:
    """Short name of a config: its file name without '.py' and without the '_cityscapes_713x713' recipe suffix;
    for a quantized folder's ``int8_config.py`` or ``bf16_config.py``, the folder's name."""
    if osp.basename(config) in FOLDER_CONFIGS:
        return osp.basename(osp.dirname(osp.abspath(config)))
    return osp.splitext(osp.basename(config))[0].replace('_cityscapes_713x713', '')


def load_model_cfg(config: str) -> Config:
    """The config ready to build its model on one device (``repseg.apis.model_config``: SyncBN as BN, no
    pretrained weights; the baselines name 'open-mmlab://...' files that cannot be fetched here)."""
    cfg = model_config(config)
    if 'backbone' in cfg.model:
        cfg.model.backbone.pop('pretrained', None)
    return cfg


def folder_form(model: Any) -> str:
    """The form of a tools/quantize.py folder's ``model`` config: its IR's precision (``model.ir.precision``; int8
    folders written before bf16 ones existed say nothing and are int8)."""
    precision = (model.get('ir') or {}).get('precision', 'int8')
    if precision not in FOLDER_FORMS:
        raise ValueError(f'{SEGMENTOR_TYPE} model.ir.precision={precision!r}: expected one of '
                         f'{", ".join(FOLDER_FORMS)}')
    return precision


def runtime_precision(runtime: str, form: str = '') -> str:
    """The precision a row computes in (one of ``PRECISIONS``): a folder's own (its form), 'int8' for the benchmark's
    int8 runtime, else the registered runtime's. Every ratio and ceiling of the benchmark is taken within one."""
    if form in FOLDER_FORMS:
        return form
    return 'int8' if runtime == INT8_RUNTIME else get_runtime(runtime).precision


def expand_specs(configs: List[str]) -> List[Tuple[str, str]]:
    """(config, form): train + deploy form for RepVGG configs, the folder's precision for quantized folders, the
    conv-BN-fused baseline form for every other segmentor."""
    specs = []
    for config in configs:
        model = load_model_cfg(config).model
        forms = (('train', 'deploy') if (model.get('backbone') or {}).get('type') == 'RepVGG' else
                 (folder_form(model),) if model.get('type') == SEGMENTOR_TYPE else ('baseline',))
        specs.extend((config, form) for form in forms)
    return specs


def load_quantized(config: str, form: str = 'int8') -> nn.Module:
    """The segmentor of a tools/quantize.py folder of precision ``form``: its config with the checkpoint of that
    precision beside it (``int8.pth``, ``bf16.pth``), in its own network."""
    if form not in FOLDER_FILES:
        raise ValueError(f'form={form!r}: expected a folder form, one of {", ".join(FOLDER_FILES)}')
    name = FOLDER_FILES[form][1]
    checkpoint = osp.join(osp.dirname(osp.abspath(config)), name)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'{checkpoint}: missing; a quantized config is measured with the {name} written '
                                f'beside it by tools/quantize.py')
    return init_segmentor(config, checkpoint, runtime='eager')


def seeded_segmentor(config: str, seed: int = 0) -> nn.Module:
    """The config's segmentor in eval mode with seeded weights (train form for RepVGG), BN statistics from one random
    batch (of 2: pooled 1x1 maps need two values) and some spread in the BN affine parameters (exercises fusion)."""
    torch.manual_seed(seed)
    segmentor = MODELS.build(load_model_cfg(config).model)
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in segmentor.modules() if isinstance(m, _BatchNorm)]
    momenta = [m.momentum for m in bns]
    with torch.no_grad():
        for m in bns:
            m.momentum = 1.0
            if m.affine:
                m.weight.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
        SegLogits(segmentor).train()(torch.randn(2, 3, 129, 129, generator=gen))
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    return segmentor.eval()


def to_form(segmentor: nn.Module, form: str) -> nn.Module:
    """Convert a built segmentor in place: 'train' keeps it, 'deploy' re-parameterizes RepVGG blocks and fuses the
    remaining conv-BN pairs (PSP head), 'baseline' fuses conv-BN pairs (the paper's treatment of ResNets)."""
    if form not in FORMS:
        raise ValueError(f'form={form!r}: expected one of {", ".join(FORMS)}')
    if form == 'deploy':
        reparameterize(segmentor)
    if form in ('deploy', 'baseline'):
        fuse_conv_bn_pairs(segmentor)
    return segmentor.eval()


def network_state(network: SegLogits) -> Dict[str, Tensor]:
    """The tensors the measured network computes with: the segmentor's, less the auxiliary head (training only), or
    the backbone's alone for ``part='backbone'``."""
    keep = 'backbone.' if network.part == 'backbone' else ''
    return {k: v for k, v in network.segmentor.state_dict().items()
            if k.startswith(keep) and not k.startswith('auxiliary_head.')}


def count_params(network: SegLogits) -> int:
    names = set(network_state(network))
    return sum(p.numel() for name, p in network.segmentor.named_parameters() if name in names)


def weight_mb(network: SegLogits) -> float:
    return sum(t.numel() * t.element_size() for t in network_state(network).values()) / 2**20

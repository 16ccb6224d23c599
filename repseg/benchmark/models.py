"""The benchmarked segmentors in train, deploy or baseline form, with seeded weights (speed does not depend on them)
and calibrated BN statistics: uncalibrated random nets blow up or shrink into slow denormals on CPUs."""
import os.path as osp
from typing import Any, Dict, List, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from repseg.apis import init_segmentor, model_config
from repseg.models import REPARAM_BACKBONES, SegLogits, reparameterize
from repseg.models.utils import fuse_conv_bn_pairs
from repseg.pruning import PRUNED_CONFIG
from repseg.quantization.calibration import street_frames
from repseg.quantization.pipeline import FOLDER_FILES
from repseg.quantization.ptq import quantize_model, weight_bytes
from repseg.quantization.segmentor import SEGMENTOR_TYPE
from repseg.runtime import FOLDER_FORMS, get_runtime
from repseg.runtime.openvino_runtime import OpenVINONetwork, convert_module

#: The forms ``to_form`` builds; a tools/quantize.py folder is measured as it is, its form being its precision.
FORMS = ('train', 'deploy', 'baseline')
#: The precisions a row can compute in, the reference first.
PRECISIONS = ('fp32', 'bf16', 'int8')
#: Config file names that a folder tool writes (quantized and pruned): such a model is named after its folder.
FOLDER_CONFIGS = {files[0] for files in FOLDER_FILES.values()} | {PRUNED_CONFIG}

#: The benchmark's on-the-fly int8 runtime: the fp32 OpenVINO model quantized by NNCF on street frame crops, one
#: more held out for parity (deployable int8 folders come from tools/quantize.py).
INT8_RUNTIME = 'openvino_int8'
CALIBRATION_FRAMES = 4
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
    """The config's file name without '.py' and the recipe suffix; for a folder tool's config, the folder's name."""
    if osp.basename(config) in FOLDER_CONFIGS:
        return osp.basename(osp.dirname(osp.abspath(config)))
    return osp.splitext(osp.basename(config))[0].replace('_cityscapes_713x713', '')


def load_model_cfg(config: str) -> Config:
    """The config's model without pretrained weights (the baselines' 'open-mmlab://...' files cannot be fetched)."""
    cfg = model_config(config)
    if 'backbone' in cfg.model:
        cfg.model.backbone.pop('pretrained', None)
    return cfg


def folder_form(model: Any) -> str:
    """A folder's form: its ``model.ir.precision`` (int8 folders written before bf16 ones existed say nothing)."""
    precision = (model.get('ir') or {}).get('precision', 'int8')
    if precision not in FOLDER_FORMS:
        raise ValueError(f'{SEGMENTOR_TYPE} model.ir.precision={precision!r}: expected one of '
                         f'{", ".join(FOLDER_FORMS)}')
    return precision


def runtime_precision(runtime: str, form: str = '') -> str:
    """The precision a row computes in (a folder's form, else its runtime's): every ratio is taken within one."""
    if form in FOLDER_FORMS:
        return form
    return 'int8' if runtime == INT8_RUNTIME else get_runtime(runtime).precision


def expand_specs(configs: List[str]) -> List[Tuple[str, str]]:
    """(config, form): train + deploy form for RepVGG configs (deploy alone for a deploy config, e.g. a pruned one),
    the folder's precision for quantized folders, the conv-BN-fused baseline form for every other segmentor."""
    specs = []
    for config in configs:
        model = load_model_cfg(config).model
        backbone = model.get('backbone') or {}
        forms = (('deploy',) if backbone.get('deploy') else
                 ('train', 'deploy') if backbone.get('type') in REPARAM_BACKBONES else
                 (folder_form(model),) if model.get('type') == SEGMENTOR_TYPE else ('baseline',))
        specs.extend((config, form) for form in forms)
    return specs


def load_quantized(config: str, form: str = 'int8') -> nn.Module:
    """The segmentor of a tools/quantize.py folder of precision ``form``, with the checkpoint beside its config."""
    if form not in FOLDER_FILES:
        raise ValueError(f'form={form!r}: expected a folder form, one of {", ".join(FOLDER_FILES)}')
    name = FOLDER_FILES[form][1]
    checkpoint = osp.join(osp.dirname(osp.abspath(config)), name)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'{checkpoint}: missing; a quantized config is measured with the {name} written '
                                f'beside it by tools/quantize.py')
    return init_segmentor(config, checkpoint, runtime='eager')


#: The BN-calibration batch's size: a multiple of 32, which every MMSegmentation model takes (PIDNet needs one of 8,
#: BiSeNet and STDC one of 32).
CALIBRATION_SHAPE = (256, 256)


def seeded_segmentor(config: str, seed: int = 0) -> nn.Module:
    """The config's segmentor, seeded, eval mode, BN statistics from a random batch of 2 and spread BN affines. Built
    in the config's default scope (MMSegmentation's own configs name types such as SegDataPreProcessor unscoped)."""
    torch.manual_seed(seed)
    cfg = load_model_cfg(config)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'mmseg'):
        segmentor = MODELS.build(cfg.model)
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in segmentor.modules() if isinstance(m, _BatchNorm)]
    momenta = [m.momentum for m in bns]
    with torch.no_grad():
        for m in bns:
            m.momentum = 1.0
            if m.affine:
                m.weight.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
        segmentor.train()(torch.randn(2, 3, *CALIBRATION_SHAPE, generator=gen), mode='tensor')  # BN statistics
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    return segmentor.eval()


def to_form(segmentor: nn.Module, form: str) -> nn.Module:
    """Convert in place: 'deploy' re-parameterizes RepVGG blocks; 'deploy' and 'baseline' fuse conv-BN pairs."""
    if form not in FORMS:
        raise ValueError(f'form={form!r}: expected one of {", ".join(FORMS)}')
    if form == 'deploy':
        reparameterize(segmentor)
    if form in ('deploy', 'baseline'):
        fuse_conv_bn_pairs(segmentor)
    return segmentor.eval()


def network_state(network: SegLogits) -> Dict[str, Tensor]:
    """The tensors the measured network computes with (no auxiliary head: it is for training)."""
    keep = 'backbone.' if network.part == 'backbone' else ''
    return {k: v for k, v in network.segmentor.state_dict().items()
            if k.startswith(keep) and not k.startswith('auxiliary_head.')}


def count_params(network: SegLogits) -> int:
    names = set(network_state(network))
    return sum(p.numel() for name, p in network.segmentor.named_parameters() if name in names)


def weight_mb(network: SegLogits) -> float:
    return sum(t.numel() * t.element_size() for t in network_state(network).values()) / 2**20


def calibration_frames(segmentor: nn.Module, shape: Tuple[int, int]) -> Tuple[List[Tensor], Tensor, str]:
    """``INT8_RUNTIME``'s calibration crops, one held-out crop and where they come from."""
    pre = segmentor.data_preprocessor
    frames, source = street_frames(tuple(shape), CALIBRATION_FRAMES + 1, mean=pre.mean.flatten().tolist(),
                                   std=pre.std.flatten().tolist(), bgr_to_rgb=bool(pre.channel_conversion))
    return frames[:-1], frames[-1], f'{CALIBRATION_FRAMES} {source}'


def prepare_int8(model: nn.Module, example: Tensor, calibration: List[Tensor]) -> OpenVINONetwork:
    """int8 OpenVINO network of ``model`` calibrated on ``calibration``, with the fp32 and int8 ``weight_bytes``."""
    fp32 = convert_module(model, example)
    run = OpenVINONetwork(quantize_model(fp32, [c.cpu() for c in calibration]))
    run.weight_bytes = {'fp32': weight_bytes(fp32), 'int8': weight_bytes(run.model)}
    return run

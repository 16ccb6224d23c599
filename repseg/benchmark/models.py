"""Build the benchmarked segmentors in their train, deploy or baseline form, with reproducible non-trivial weights.

No pretrained file is read (none can be fetched here, and speed does not depend on the values): weights are seeded,
and the BN running statistics are calibrated on one random batch so that activations keep a realistic scale through
the deep stacks (uncalibrated random nets shrink or blow up, and tiny values turn into slow denormals on CPUs).
"""
import copy
import os.path as osp
from dataclasses import dataclass
from typing import Any, List, Tuple

import torch
from mmengine.config import Config
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from repseg.models import reparameterize
from repseg.models.utils import fuse_conv_bn
from repseg.runtime import SegLogits

FORMS = ('train', 'deploy', 'baseline')

#: The default line-up: the paper's four RepVGG PSPNets (Table 8) and MMSegmentation's ResNet PSPNets.
DEFAULT_CONFIGS = (
    'configs/pspnet_repvgg_b1g2_fast.py',
    'configs/pspnet_repvgg_b1g2.py',
    'configs/pspnet_repvgg_b2_fast.py',
    'configs/pspnet_repvgg_b2.py',
    'configs/baselines/pspnet_r50-d8_cityscapes_713x713.py',
    'configs/baselines/pspnet_r101-d8_cityscapes_713x713.py',
)


@dataclass(frozen=True)
class ModelSpec:
    """One benchmarked model: a config file in one form."""
    config: str
    form: str

    @property
    def name(self) -> str:
        return model_name(self.config)


#: The form of a folder written by tools/quantize.py (DIR/int8_config.py + DIR/int8.pth): measured as it is.
QUANTIZED_FORM = 'int8'
QUANTIZED_CONFIG, QUANTIZED_CHECKPOINT = 'int8_config.py', 'int8.pth'


def model_name(config: str) -> str:
    """Short name of a config: its file name without '.py' and without the '_cityscapes_713x713' recipe suffix;
    for a quantized folder's ``int8_config.py``, the folder's name."""
    if osp.basename(config) == QUANTIZED_CONFIG:
        return osp.basename(osp.dirname(osp.abspath(config)))
    return osp.splitext(osp.basename(config))[0].replace('_cityscapes_713x713', '')


def load_model_cfg(config: str) -> Config:
    """The config's ``model`` dict ready to build on one device: SyncBN -> BN, no pretrained weights."""
    if not osp.isfile(config):
        raise FileNotFoundError(f'{config}: no such config file')
    cfg = Config.fromfile(config)
    if 'model' not in cfg:
        raise ValueError(f'{config}: no `model` in this config; expected a segmentor config')
    model_cfg = _sync_bn_to_bn(copy.deepcopy(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else cfg.model))
    model_cfg['pretrained'] = None  # baselines name 'open-mmlab://...' (cannot be fetched; init_weights is not called)
    return Config(dict(model=model_cfg))


def is_repvgg(config: str) -> bool:
    """Whether the config's backbone is RepVGG (then it has a train and a deploy form; otherwise it is a baseline)."""
    return (load_model_cfg(config).model.get('backbone') or {}).get('type') == 'RepVGG'


def is_quantized(config: str) -> bool:
    """Whether the config is a tools/quantize.py folder's (an OpenVINO segmentor with its weights beside it)."""
    from repseg.quantization.segmentor import SEGMENTOR_TYPE
    return load_model_cfg(config).model.get('type') == SEGMENTOR_TYPE


def expand_specs(configs: List[str]) -> List[ModelSpec]:
    """Train + deploy form for RepVGG configs, the int8 form for quantized folders, the conv-BN-fused baseline form
    for every other segmentor."""
    specs = []
    for config in configs:
        forms = (('train', 'deploy') if is_repvgg(config) else
                 (QUANTIZED_FORM,) if is_quantized(config) else ('baseline',))
        specs.extend(ModelSpec(config, form) for form in forms)
    return specs


class QuantizedLogits(nn.Module):
    """A quantized folder's network as the benchmark measures models: the OpenVINO network (backbone + decode head)
    and the bilinear resize of its logits to the input size, as ``SegLogits``."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.network = segmentor.network
        self.align_corners = bool(segmentor.align_corners)

    def forward(self, x: Tensor) -> Tensor:
        import torch.nn.functional as F
        return F.interpolate(self.network(x), size=x.shape[2:], mode='bilinear', align_corners=self.align_corners)


def load_quantized(config: str) -> nn.Module:
    """The int8 segmentor of a tools/quantize.py folder: ``int8_config.py`` with the ``int8.pth`` beside it."""
    from repseg.apis import init_segmentor
    checkpoint = osp.join(osp.dirname(osp.abspath(config)), QUANTIZED_CHECKPOINT)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'{checkpoint}: missing; a quantized config is measured with the '
                                f'{QUANTIZED_CHECKPOINT} written beside it by tools/quantize.py')
    return init_segmentor(config, checkpoint)


class Backbone(nn.Module):
    """The backbone alone, returning its last output (what the 3x3-conv ceiling is compared with)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)[-1]


def build_segmentor(config: str, seed: int = 0) -> nn.Module:
    """The config's segmentor in eval mode with seeded weights and calibrated BN statistics (train form for RepVGG)."""
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import repseg  # noqa: F401  (compat layer + RepVGG registration, before mmseg.models)
    register_all_modules(init_default_scope=False)
    torch.manual_seed(seed)
    segmentor = MODELS.build(load_model_cfg(config).model)
    calibrate_bn(SegLogits(segmentor), seed)
    return segmentor.eval()


@torch.no_grad()
def calibrate_bn(model: nn.Module, seed: int = 0, shape: Tuple[int, int] = (129, 129)) -> None:
    """Set every BN's running statistics from one random batch (batch 2: pooled 1x1 maps need two values),
    and give the affine parameters some spread so that BN fusion is really exercised."""
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.momentum = 1.0
        if m.affine:
            m.weight.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
            m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    was_training = model.training
    model.train()
    model(torch.randn(2, 3, *shape, generator=gen))
    model.train(was_training)
    for m, (momentum, training) in zip(bns, saved):
        m.momentum = momentum
        m.train(training)


@torch.no_grad()
def fuse_conv_bn_pairs(model: nn.Module) -> int:
    """Fold every BN that directly follows a Conv2d (in registration order inside one parent, as in ResNet
    bottlenecks, stems, ``downsample`` Sequentials and ConvModules) into that conv; the BN becomes Identity.
    This is what the paper did to its ResNet baselines. Returns the number of fused pairs."""
    fused = 0
    for parent in list(model.modules()):
        last_conv = None
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                last_conv = child
            elif isinstance(child, _BatchNorm) and last_conv is not None \
                    and last_conv.out_channels == child.num_features:
                kernel, bias = fuse_conv_bn(last_conv.weight, child)
                if last_conv.bias is not None:  # BN(Wx + b) = W'x + b' + scale * b
                    gamma = child.weight if child.affine else torch.ones_like(child.running_var)
                    bias = bias + last_conv.bias * gamma / (child.running_var + child.eps).sqrt()
                last_conv.weight.copy_(kernel)
                last_conv.bias = nn.Parameter(bias)
                setattr(parent, name, nn.Identity())
                last_conv = None
                fused += 1
            else:
                last_conv = None
    return fused


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


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _sync_bn_to_bn(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: ('BN' if k == 'type' and v == 'SyncBN' else _sync_bn_to_bn(v)) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_sync_bn_to_bn(v) for v in node)
    return node

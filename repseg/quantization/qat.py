"""Quantization-aware training as an ordinary MMSegmentation run: ``QATEncoderDecoder`` is the trained float
segmentor in deploy form with NNCF's fake quantizers (PTQ's scheme) in backbone + decode head, the Runner fine-tunes
weights and scales, and ``QATExportHook`` writes the int8 folder of ``tools/quantize.py``, evaluated the same way.
NNCF rather than the deprecated ``torch.quantization``: it hooks the unchanged module, its quantizers are OpenVINO's."""
import copy
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.models.segmentors.encoder_decoder import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import add_prefix
from torch import Tensor, nn

from repseg.apis import read_config
from repseg.models import SegLogits
from repseg.models.kernel_ranges import range_report
from repseg.runtime.openvino_runtime import OpenVINONetwork, convert_module
from repseg.utils import check_out_dir, compare_logits
from .calibration import CalibrationSet, network_inputs
from .evaluation import ValidationItems, evaluate
from .pipeline import FloatSegmentor, float_deploy_segmentor, write_result
from .ptq import backend_info, nncf_settings, require_nncf
from .report import QuantizationReport
from .segmentor import ir_segmentor

SEGMENTOR_TYPE = 'QATEncoderDecoder'
#: NNCF_EXTENSION_LOAD_TIMEOUT unless set: NNCF's default, 60 s to compile its C++ extension, is short on a busy CPU.
EXTENSION_LOAD_TIMEOUT_S = 900
_log = functools.partial(print_log, logger='current')


class DeployedNetwork(nn.Module):
    """Backbone + decode head, the quantized network; also returns the features the float auxiliary head uses."""

    def __init__(self, backbone: nn.Module, decode_head: nn.Module):
        super().__init__()
        self.backbone, self.decode_head = backbone, decode_head

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        if x.is_cuda:
            nncf_cuda_fallback()
        feats = self.backbone(x)
        return self.decode_head(feats), feats


def has_nvcc() -> bool:
    """Whether torch finds a CUDA toolkit with nvcc, which NNCF needs to compile its CUDA kernels."""
    from torch.utils import cpp_extension
    home = cpp_extension.CUDA_HOME
    return home is not None and os.path.isfile(os.path.join(home, 'bin', 'nvcc'))


def nncf_cuda_fallback(log: Callable[[str], None] = _log) -> bool:
    """NNCF compiles its CUDA kernels when a quantizer first sees a CUDA tensor and stops with a traceback where there
    is no nvcc (pip's CUDA wheels ship none). Without nvcc its fake quantizers run as PyTorch ops instead (NNCF's own
    reference functions, the same arithmetic; slower), said in one line. Returns whether that fallback is in place."""
    from nncf.torch.quantization import extensions
    functions = extensions.QuantizedFunctionsCUDA
    if getattr(functions, '_loaded_namespace', None) is extensions.ReferenceQuantizedFunctions:
        return True
    if not isinstance(functions, extensions.ExtensionNamespace) or functions._loaded_namespace is not None \
            or has_nvcc():
        return False  # no CUDA at NNCF's import, kernels already loaded, or NNCF can build them
    functions._loaded_namespace = extensions.ReferenceQuantizedFunctions
    log('QAT on CUDA without the CUDA toolkit (no nvcc found): NNCF\'s fake quantizers run as PyTorch ops, slower '
        'than its kernels; install the CUDA toolkit (and set CUDA_HOME) for those')
    return True


@dataclass
class QATSource:
    """The trained float model a QAT model comes from, the converter's proof and the report's ``calibration``."""

    float_config: str
    checkpoint: str
    conversion: Optional[List[dict]]
    calibration: Dict[str, Any]


class QATEncoderDecoder(EncoderDecoder):
    """An ``EncoderDecoder`` of ready parts: fake-quantized ``network``, float ``auxiliary_head``, all in state_dict."""

    def __init__(self, network: nn.Module, auxiliary_head: Optional[nn.Module], num_classes: int, out_channels: int,
                 align_corners: bool, train_cfg: dict, test_cfg: dict, preset: str, source: QATSource,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        BaseSegmentor.__init__(self, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.network, self.auxiliary_head = network, auxiliary_head
        self.num_classes, self.out_channels, self.align_corners = num_classes, out_channels, align_corners
        self.train_cfg, self.test_cfg, self.preset, self.source = train_cfg, test_cfg, preset, source

    def init_weights(self) -> None:
        """Every weight comes from the float checkpoint: the heads' ``init_cfg`` must not re-draw them."""

    @property
    def decode_head(self) -> nn.Module:
        return self.network.decode_head

    @property
    def backbone(self) -> nn.Module:
        return self.network.backbone

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        return list(self.network(inputs)[1])

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        return self.decode_head.predict_by_feat(self.network(inputs)[0], batch_img_metas)

    def _forward(self, inputs: Tensor, data_samples: Optional[list] = None) -> Tensor:
        return self.network(inputs)[0]

    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        logits, feats = self.network(inputs)
        losses = add_prefix(self.decode_head.loss_by_feat(logits, data_samples), 'decode')
        if self.with_auxiliary_head:
            heads = self.auxiliary_head if isinstance(self.auxiliary_head, nn.ModuleList) else [self.auxiliary_head]
            for i, head in enumerate(heads):
                losses.update(add_prefix(head.loss(list(feats), data_samples, self.train_cfg),
                                         'aux' if len(heads) == 1 else f'aux_{i}'))
        return losses


def load_float(float_config: Union[str, Path], checkpoint: Union[str, Path],
               log: Callable[[str], None] = _log) -> FloatSegmentor:
    """The float segmentor QAT starts from (and is compared with), in deploy form."""
    for path, what in ((float_config, 'float_config'), (checkpoint, 'checkpoint')):
        if not Path(path).is_file():
            raise FileNotFoundError(f'{path}: no such file ({SEGMENTOR_TYPE} {what}: the trained float model '
                                    f'that QAT starts from)')
    return float_deploy_segmentor(read_config(float_config), checkpoint, log)


def float_reference(model: QATEncoderDecoder, log: Callable[[str], None] = _log) -> FloatSegmentor:
    """The float segmentor of ``model``, rebuilt from its recorded config and checkpoint (no hidden module)."""
    return load_float(model.source.float_config, model.source.checkpoint, log)


@MODELS.register_module(name=SEGMENTOR_TYPE)
def build_qat_segmentor(float_config: str, checkpoint: str, num_calib: int = 64, preset: str = 'performance',
                        data_preprocessor: Optional[dict] = None,
                        init_cfg: Optional[dict] = None) -> QATEncoderDecoder:
    """``dict(type='QATEncoderDecoder', ...)``: ``num_calib`` training images set the ranges; preprocessor merged."""
    float_seg = load_float(float_config, checkpoint)
    train_model_cfg = read_config(float_config).model  # the training-time preprocessor (crop padding) and cfg
    model = float_seg.model
    calib = CalibrationSet(float_seg.cfg, model, num_calib)
    _log(f'[qat] inserting fake quantizers (NNCF), ranges from {len(calib)} images of the training split')
    nncf = require_nncf()
    os.environ.setdefault('NNCF_EXTENSION_LOAD_TIMEOUT', str(EXTENSION_LOAD_TIMEOUT_S))
    # no bias correction (None): fine-tuning adjusts the biases anyway, and it would cost a second calibration pass
    settings = dict(nncf_settings(preset, True, len(calib)), fast_bias_correction=None)
    network = nncf.quantize(DeployedNetwork(model.backbone, model.decode_head).eval(),
                            nncf.Dataset(calib, torch.as_tensor), **settings)
    preprocessor = {**dict(train_model_cfg.get('data_preprocessor') or {}), **dict(data_preprocessor or {})}
    return QATEncoderDecoder(
        network, model.auxiliary_head if model.with_auxiliary_head else None, num_classes=model.num_classes,
        out_channels=model.out_channels, align_corners=model.align_corners,
        train_cfg=train_model_cfg.get('train_cfg') or dict(), test_cfg=model.test_cfg, preset=preset,
        source=QATSource(str(float_config), str(checkpoint), float_seg.conversion, calib.record()),
        data_preprocessor=preprocessor or None, init_cfg=init_cfg)


def export_qat(model: QATEncoderDecoder, cfg: Any, out_dir: Union[str, Path], agreement_images: Sequence[Any] = (),
               log: Callable[[str], None] = _log) -> QuantizationReport:
    """Write the int8 folder of a QAT-trained ``model``; ``cfg``: the run's config (validation split, evaluator)."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    cfg = copy.deepcopy(cfg)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if dict(h).get('type') != 'QATExportHook']
    float_model = float_reference(model, log).model
    model.cpu().eval()  # OpenVINO converts and runs on the CPU, wherever the model was trained
    val = ValidationItems(cfg)
    example = network_inputs(float_model, val[0])
    log(f'[qat] converting to OpenVINO (dynamic N x 3 x H x W; traced at {tuple(example.shape)})')
    fp32_model = convert_module(SegLogits(float_model, resize=False).eval(), example)
    qat_logits = SegLogits(model, resize=False).eval()
    int8_model = convert_module(qat_logits, example)
    with torch.no_grad():  # fake quantization emulates the int8 kernels up to rounding: recorded, not judged
        parity = compare_logits('openvino int8 vs PyTorch fake quantization, first val input', qat_logits(example),
                                OpenVINONetwork(int8_model)(example), rtol=None)
    log(f'[qat] int8 IR vs PyTorch fake quantization on the first val input: max |logit diff| '
        f'{parity.max_rel:.2e} of max |logit|, argmax agreement {100 * parity.agreement:.2f}%')
    log(f'[qat] evaluating fp32 (float checkpoint) and int8 (QAT) on {len(val)} validation images')
    evaluation = evaluate(cfg, ir_segmentor(float_model), {'fp32': OpenVINONetwork(fp32_model),
                                                           'int8': OpenVINONetwork(int8_model)}, val)
    source = model.source
    header = f'int8 (OpenVINO IR of a model fine-tuned with NNCF quantization-aware training) of {source.float_config}'
    training = dict(config=cfg.filename, iterations=cfg.get('train_cfg', {}).get('max_iters'),
                    optimizer=dict(cfg.get('optim_wrapper', {}).get('optimizer', {})))
    return write_result(
        out_dir, cfg, float_model, fp32_model, int8_model, evaluation, example, header,
        f'fine-tuned from {source.checkpoint}', config=source.float_config, checkpoint=source.checkpoint,
        method='qat', agreement_images=agreement_images, log=log,
        deploy_conversion=source.conversion, calibration=source.calibration, training=training,
        parity_openvino_int8_vs_fake_quant=parity.as_dict(), kernel_ranges=range_report(model.network),
        backend={**backend_info(model.preset, False), 'qat': 'nncf (PyTorch, function hooks)'})


@HOOKS.register_module()
class QATExportHook(Hook):
    """After training, writes the int8 folder of the QAT model to ``work_dir/out_dir`` (rank 0 only)."""

    priority = 'VERY_LOW'

    def __init__(self, out_dir: str = 'int8', agreement_images: Sequence[str] = ()):
        self.out_dir, self.agreement_images = out_dir, list(agreement_images)

    def before_train(self, runner: Any) -> None:
        """Refuse a work dir that already holds an int8 result before training, not after."""
        check_out_dir(Path(runner.work_dir) / self.out_dir)

    @master_only
    def after_train(self, runner: Any) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(model, QATEncoderDecoder):
            raise TypeError(f'QATExportHook: the model is a {type(model).__name__}, expected a {SEGMENTOR_TYPE}')
        export_qat(model, runner.cfg, Path(runner.work_dir) / self.out_dir, self.agreement_images)

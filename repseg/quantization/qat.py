"""Quantization-aware training (QAT) as an ordinary MMSegmentation training run, ending in the int8 folder that
``tools/quantize.py`` writes.

The config type ``QATEncoderDecoder`` names a builder (``build_qat_segmentor``) that starts from a trained float
segmentor (its config and checkpoint): a train-form RepVGG backbone is converted to the deploy form first (with the
converter's proof), then NNCF's PyTorch backend inserts fake quantizers into backbone + decode head, the network
that is deployed, with the same scheme as PTQ (symmetric int8, per-channel weights, per-tensor activations, CPU
target, first layer's weights in 7 bits) and initializes them on calibration images of the float config's training
split. It returns a ``QATEncoderDecoder`` made of these ready parts (the quantized network, the float auxiliary
head, the settings and where they came from); every module it holds is in its ``state_dict``. mmengine's Runner
then fine-tunes the weights and quantizer scales with the config's optimizer and schedule; the auxiliary head stays
float (it is not deployed).

``QATExportHook`` (after training, rank 0) converts the trained network to OpenVINO, where NNCF's quantizers become
FakeQuantize + int8 kernels, evaluates it against the float checkpoint's deploy form (rebuilt from the recorded
float config and checkpoint: ``float_reference``) on the validation split exactly as ``tools/quantize.py`` does, and
writes ``int8_config.py``, ``int8.pth``, ... under the work dir.

Why NNCF (not torch's eager ``torch.quantization``, which is deprecated): it quantizes the unchanged module
through function hooks, its quantizers map one to one onto OpenVINO's, and the result runs in the runtime already
chosen for PTQ (docs/quantization.md). Unlike the official RepVGG QAT, no BN is re-inserted after the fused convs:
the deploy weights are fine-tuned directly, with a small learning rate.
"""
import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import get_rank
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
from repseg.utils import compare_logits
from .calibration import CalibrationSet, network_inputs
from .evaluation import ValidationItems, evaluate
from .folder import Quantization, check_out_dir, write_result
from .pipeline import FloatSegmentor, float_deploy_segmentor
from .ptq import backend_info, nncf_settings, require_nncf
from .report import Calibration, Training
from .segmentor import ir_segmentor

SEGMENTOR_TYPE = 'QATEncoderDecoder'
EXTENSION_LOAD_TIMEOUT_S = 900  # NNCF_EXTENSION_LOAD_TIMEOUT unless set: compiling NNCF's CPU extension


def _log(message: str) -> None:
    print_log(message, logger='current')


class DeployedNetwork(nn.Module):
    """Backbone + decode head: the network that is deployed and quantized. It also returns the backbone's features,
    from which the float auxiliary head learns."""

    def __init__(self, backbone: nn.Module, decode_head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        feats = self.backbone(x)
        return self.decode_head(feats), feats


@dataclass
class QATSource:
    """Where a QAT model comes from: the trained float model, the converter's proof (None when it was in deploy form
    already) and the calibration that initialized the quantizer ranges."""

    float_config: str
    checkpoint: str
    conversion: Optional[List[dict]]
    calibration: Calibration


class QATEncoderDecoder(EncoderDecoder):
    """An ``EncoderDecoder`` for quantization-aware fine-tuning (module docstring), made of ready parts.

    Args:
        network: backbone + decode head with NNCF's fake quantizers (``DeployedNetwork`` through
            ``insert_fake_quantizers``).
        auxiliary_head: the float auxiliary head(s) trained on the network's features, or None.
        num_classes, out_channels, align_corners, train_cfg, test_cfg: the float segmentor's.
        preset: the NNCF preset the quantizers were inserted with.
        source: the float model and calibration it was built from.
    """

    def __init__(self, network: nn.Module, auxiliary_head: Optional[nn.Module], num_classes: int, out_channels: int,
                 align_corners: bool, train_cfg: dict, test_cfg: dict, preset: str, source: QATSource,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        BaseSegmentor.__init__(self, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.network = network
        self.auxiliary_head = auxiliary_head
        self.num_classes, self.out_channels, self.align_corners = num_classes, out_channels, align_corners
        self.train_cfg, self.test_cfg = train_cfg, test_cfg
        self.preset = preset
        self.source = source

    def init_weights(self) -> None:
        """Nothing to initialize: every weight comes from the float checkpoint (and the Runner must not re-draw the
        heads' classifiers as their ``init_cfg`` would)."""

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
        if self.auxiliary_head is not None:
            heads = self.auxiliary_head if isinstance(self.auxiliary_head, nn.ModuleList) else [self.auxiliary_head]
            for i, head in enumerate(heads):
                name = 'aux' if len(heads) == 1 else f'aux_{i}'
                losses.update(add_prefix(head.loss(list(feats), data_samples, self.train_cfg), name))
        return losses


def insert_fake_quantizers(network: nn.Module, calibration: Sequence[Any], preset: str = 'performance') -> nn.Module:
    """``network`` with NNCF's fake quantizers, their ranges initialized on ``calibration`` (network inputs)."""
    nncf = require_nncf()
    # NNCF's torch quantizers compile a C++ extension (ninja + g++) on first use and give up after 60 s by default,
    # which a 2-core machine busy with other work exceeds; a value the user set wins
    os.environ.setdefault('NNCF_EXTENSION_LOAD_TIMEOUT', str(EXTENSION_LOAD_TIMEOUT_S))
    items = [torch.as_tensor(calibration[i]) for i in range(len(calibration))]
    network.eval()
    # bias correction is left out: fine-tuning adjusts the biases anyway, and NNCF's torch backend would need a
    # second pass over the calibration set
    settings = nncf_settings(preset, fast_bias_correction=True, subset_size=len(items))
    settings['fast_bias_correction'] = None  # NNCF: None = no bias correction
    return nncf.quantize(network, nncf.Dataset(items), **settings)


def load_float(float_config: Union[str, Path], checkpoint: Union[str, Path],
               log: Callable[[str], None] = _log) -> FloatSegmentor:
    """The float segmentor QAT starts from (and is compared with), in deploy form."""
    for path, what in ((float_config, 'float_config'), (checkpoint, 'checkpoint')):
        if not Path(path).is_file():
            raise FileNotFoundError(f'{path}: no such file ({SEGMENTOR_TYPE} {what}: the trained float model '
                                    f'that QAT starts from)')
    return float_deploy_segmentor(read_config(float_config), checkpoint, log)


@MODELS.register_module(name=SEGMENTOR_TYPE)
def build_qat_segmentor(float_config: str, checkpoint: str, num_calib: int = 64, preset: str = 'performance',
                        data_preprocessor: Optional[dict] = None,
                        init_cfg: Optional[dict] = None) -> QATEncoderDecoder:
    """What a config's ``model = dict(type='QATEncoderDecoder', ...)`` builds (module docstring).

    Args:
        float_config: the float model's config (its model, and the training split used for calibration).
        checkpoint: the trained float checkpoint (train or deploy form).
        num_calib: calibration images that initialize the quantizer ranges (evenly spaced over the training split).
        preset: NNCF preset, as ``tools/quantize.py --preset``.
        data_preprocessor: the Runner's (the config's top level); merged over the float model's, which has the
            training crop size.
    """
    float_seg = load_float(float_config, checkpoint)
    train_model_cfg = read_config(float_config).model  # the training-time preprocessor (crop padding) and cfg
    model = float_seg.model
    calib = CalibrationSet(float_seg.cfg, model, num_calib)
    _log(f'[qat] inserting fake quantizers (NNCF), ranges from {len(calib)} images of the training split')
    network = insert_fake_quantizers(DeployedNetwork(model.backbone, model.decode_head), calib, preset)
    preprocessor = {**dict(train_model_cfg.get('data_preprocessor') or {}), **dict(data_preprocessor or {})}
    return QATEncoderDecoder(
        network, model.auxiliary_head if model.with_auxiliary_head else None, num_classes=model.num_classes,
        out_channels=model.out_channels, align_corners=model.align_corners,
        train_cfg=train_model_cfg.get('train_cfg') or dict(), test_cfg=model.test_cfg, preset=preset,
        source=QATSource(str(float_config), str(checkpoint), float_seg.conversion, calib.record()),
        data_preprocessor=preprocessor or None, init_cfg=init_cfg)


def float_reference(model: QATEncoderDecoder, log: Callable[[str], None] = _log) -> FloatSegmentor:
    """The float segmentor ``model`` was built from, in deploy form, rebuilt from its recorded config and
    checkpoint (what the export compares the QAT network with)."""
    return load_float(model.source.float_config, model.source.checkpoint, log)


def export_qat(model: QATEncoderDecoder, cfg: Any, out_dir: Union[str, Path], agreement_images: Sequence[Any] = (),
               float_model: Optional[nn.Module] = None, log: Callable[[str], None] = _log) -> Quantization:
    """Write the int8 folder of a QAT-trained ``model`` (see the module docstring); ``cfg``: the run's config (its
    validation split and evaluator); ``float_model``: the float reference in deploy form (default: rebuilt with
    ``float_reference``)."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    cfg = copy.deepcopy(cfg)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if dict(h).get('type') != 'QATExportHook']
    float_model = float_model if float_model is not None else float_reference(model, log).model
    model.cpu().eval()  # OpenVINO converts and runs on the CPU, wherever the model was trained
    val = ValidationItems(cfg)
    example = network_inputs(float_model, val[0])
    log(f'[qat] converting to OpenVINO (dynamic N x 3 x H x W; traced at {tuple(example.shape)})')
    fp32_model = convert_module(SegLogits(float_model, resize=False).eval(), example)
    qat_logits = SegLogits(model, resize=False).eval()
    int8_model = convert_module(qat_logits, example)
    with torch.no_grad():
        parity = compare_logits('openvino int8 vs PyTorch fake quantization, first val input', qat_logits(example),
                                OpenVINONetwork(int8_model)(example), rtol=None)
    log(f'[qat] int8 IR vs PyTorch fake quantization on the first val input: max |logit diff| '
        f'{parity.max_rel:.2e} of max |logit|, argmax agreement {100 * parity.agreement:.2f}% (recorded, not judged)')
    log(f'[qat] evaluating fp32 (float checkpoint) and int8 (QAT) on {len(val)} validation images')
    evaluation = evaluate(cfg, ir_segmentor(float_model), {'fp32': OpenVINONetwork(fp32_model),
                                                           'int8': OpenVINONetwork(int8_model)}, val)
    source = model.source
    header = (f'int8 (OpenVINO IR of a model fine-tuned with NNCF quantization-aware training) of '
              f'{source.float_config}\nweights: int8.pth (the IR as uint8 buffers; also int8.xml / int8.bin), '
              f'fine-tuned from {source.checkpoint}')
    training = Training(cfg.filename, cfg.get('train_cfg', {}).get('max_iters'),
                        dict(cfg.get('optim_wrapper', {}).get('optimizer', {})))
    return write_result(
        out_dir, cfg, float_model, fp32_model, int8_model, evaluation, example, header, config=source.float_config,
        checkpoint=source.checkpoint, method='qat', agreement_images=agreement_images, log=log,
        deploy_conversion=source.conversion, calibration=source.calibration, training=training,
        # fake quantization emulates the int8 kernels up to rounding: recorded, not judged
        parity_openvino_int8_vs_fake_quant=parity.as_dict(),
        backend={**backend_info(model.preset, False), 'qat': 'nncf (PyTorch, function hooks)'},
        kernel_ranges=range_report(model.network))


@HOOKS.register_module()
class QATExportHook(Hook):
    """After training, writes the int8 folder of the QAT model to ``work_dir/out_dir`` (rank 0 only)."""

    priority = 'VERY_LOW'

    def __init__(self, out_dir: str = 'int8', agreement_images: Sequence[str] = ()):
        self.out_dir = out_dir
        self.agreement_images = list(agreement_images)

    def before_train(self, runner: Any) -> None:
        """Refuse a work dir that already holds an int8 result before training, not after."""
        check_out_dir(Path(runner.work_dir) / self.out_dir)

    def after_train(self, runner: Any) -> None:
        if get_rank() != 0:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(model, QATEncoderDecoder):
            raise TypeError(f'QATExportHook: the model is a {type(model).__name__}, expected a {SEGMENTOR_TYPE}')
        export_qat(model, runner.cfg, Path(runner.work_dir) / self.out_dir, self.agreement_images)

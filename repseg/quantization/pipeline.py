"""What ``tools/quantize.py`` does: deploy form -> OpenVINO fp32 (proven equal) -> NNCF int8 -> mIoU of both on the
validation split -> accuracy-aware fallback when the drop is too large -> the int8 folder, or nothing at all when
even the fallback cannot keep the drop within ``max_drop``. With ``precision='bf16'``: the fp32 IR compiled in bf16
(no calibration), measured the same way, the folder or nothing. ``float_deploy_segmentor`` is also where QAT
starts."""
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from repseg.apis import init_segmentor, read_config
from repseg.deploy import AlreadyDeployed, convert_to_deploy
from repseg.engine import merge_checked_options
from repseg.models import SegLogits
from repseg.models.kernel_ranges import range_report
from repseg.runtime import check_offered
from repseg.runtime.openvino_runtime import OpenVINONetwork, convert_module, openvino_version
from repseg.utils import LOGIT_RTOL, check_out_dir, compare_logits, median_ms
from .calibration import CalibrationSet, network_inputs
from .evaluation import ValidationItems, evaluate, validation_fn
from .folder import write_result
from .ptq import backend_info, float_layers, layer_precisions, quantize_model, quantize_with_accuracy_control
from .report import PRECISIONS, QuantizationReport
from .segmentor import folder_network, ir_segmentor


class QuantizationRefused(ValueError):
    """Even accuracy-aware quantization loses more than ``max_drop`` mIoU: nothing is written."""


@dataclass
class FloatSegmentor:
    """The float segmentor in deploy form and eval mode, its (deploy) config and the converter's proof (None when
    nothing was converted: deploy-form and non-RepVGG models)."""

    model: nn.Module
    cfg: Config
    conversion: Optional[List[dict]]


def float_deploy_segmentor(cfg: Config, checkpoint: Union[str, Path],
                           log: Callable[[str], None] = print) -> FloatSegmentor:
    """A train-form RepVGG segmentor is converted with ``repseg.deploy`` first (in a temporary folder, proven
    equal); deploy-form and non-RepVGG ones are used as they are."""
    with tempfile.TemporaryDirectory(prefix='repseg-quantize-') as tmp:
        cfg_path, ckpt_path, conversion = cfg, Path(checkpoint), None
        if (cfg.get('model', {}).get('backbone') or {}).get('type') == 'RepVGG':
            try:
                converted = convert_to_deploy(cfg, checkpoint, tmp, log=lambda m: log(f'[deploy] {m}'))
                cfg_path, ckpt_path = converted.config, converted.checkpoint
                conversion = [d.as_dict() for d in converted.diffs]
            except AlreadyDeployed:
                pass
        deploy_cfg = read_config(cfg_path)
        init_default_scope(deploy_cfg.get('default_scope', 'mmseg'))
        return FloatSegmentor(init_segmentor(cfg_path, ckpt_path, runtime='eager'), deploy_cfg, conversion)


def quantize_segmentor(config: Union[str, Path], checkpoint: Union[str, Path], out_dir: Union[str, Path],
                       num_calib: int = 300, max_drop: float = 1.0, preset: str = 'performance',
                       fast_bias_correction: bool = True, max_iterations: Optional[int] = None,
                       ranking_subset: Optional[int] = None, agreement_images: Sequence[Union[str, Path]] = (),
                       cfg_options: Optional[dict] = None, force: bool = False, precision: str = 'int8',
                       log: Callable[[str], None] = print) -> QuantizationReport:
    """Quantize a trained segmentor to ``precision`` ('int8' or 'bf16') and write ``out_dir`` (module docstring);
    QuantizationRefused (nothing written) when it loses more than ``max_drop`` mIoU points (int8: even with the
    fallback). ``cfg_options``: checked ``--cfg-options`` (e.g. data roots)."""
    out_dir = Path(out_dir)
    if precision not in PRECISIONS:
        raise ValueError(f'--precision {precision!r}: expected one of {", ".join(PRECISIONS)}')
    if precision == 'bf16':
        check_offered('openvino_bf16')  # a CPU without bf16 would measure f32 twice
    check_out_dir(out_dir, force)  # before the work; again when the folder is moved into place
    if max_drop < 0:
        raise ValueError(f'--max-drop {max_drop}: expected a non-negative number of mIoU points')
    if ranking_subset is not None and ranking_subset < 1:
        raise ValueError(f'--ranking-subset {ranking_subset}: expected at least 1 validation image')
    for image in agreement_images:
        if not Path(image).exists():
            raise FileNotFoundError(f'{image}: no such image file or folder (--agreement-images)')
    source_cfg = read_config(config)
    merge_checked_options(source_cfg, cfg_options, str(config))
    source = float_deploy_segmentor(source_cfg, checkpoint, log)
    cfg, float_model = source.cfg, source.model

    val = ValidationItems(cfg)
    example = network_inputs(float_model, val[0])
    eager = SegLogits(float_model, resize=False).eval()
    log(f'converting to OpenVINO (dynamic N x 3 x H x W; traced at {tuple(example.shape)})')
    fp32_model = convert_module(eager, example)
    fp32 = OpenVINONetwork(fp32_model)
    with torch.no_grad():
        parity = compare_logits('openvino fp32 vs eager, first val input', eager(example), fp32(example))
    log(str(parity))
    if not parity.passed:
        raise ValueError(f'{checkpoint}: OpenVINO fp32 differs from PyTorch beyond {LOGIT_RTOL:g} x max|logit| '
                         f'({parity.max_rel:.2e}); nothing written')

    # kernel ranges from the train form when there is one: the same fused kernels, plus which branch sets their range
    train_form = init_segmentor(source_cfg, checkpoint, runtime='eager') if source.conversion else None
    kernels = range_report(train_form or float_model)
    common = dict(config=str(config), checkpoint=str(checkpoint), agreement_images=agreement_images, force=force,
                  log=log, deploy_conversion=source.conversion, max_drop=max_drop,
                  parity_openvino_fp32_vs_eager=parity.as_dict(), kernel_ranges=kernels)
    if precision == 'bf16':
        return _write_bf16(out_dir, cfg, float_model, fp32_model, fp32, val, example, common, log)

    calib = CalibrationSet(cfg, float_model, num_calib)
    log(f'calibrating on {len(calib)} images of the training split (test pipeline, {calib.mode} mode)')
    int8_model = quantize_model(fp32_model, calib, preset, fast_bias_correction)
    ov_segmentor = ir_segmentor(float_model)
    log(f'evaluating fp32 and int8 on {len(val)} validation images')
    plain = evaluate(cfg, ov_segmentor, {'fp32': fp32, 'int8': OpenVINONetwork(int8_model)}, val)
    log(f'plain PTQ: {plain}')
    final, final_ev, control = int8_model, plain, None
    if plain.drop > max_drop:
        log(f'drop {plain.drop:.2f} > --max-drop {max_drop:g}: accuracy-aware quantization (the most harmful '
            f'layers back to float)')
        validate = validation_fn(cfg, ov_segmentor, val, OpenVINONetwork.from_compiled)
        final = quantize_with_accuracy_control(fp32_model, calib, val, validate, max_drop, preset,
                                               fast_bias_correction, max_iterations, ranking_subset)
        final_ev = evaluate(cfg, ov_segmentor, {'fp32': fp32, 'int8': OpenVINONetwork(final)}, val)
        in_float = float_layers(final)
        log(f'accuracy control: {final_ev}, with {len(in_float)} layers in float')
        mious = f'int8 mIoU {final_ev.of("int8").mIoU:.2f} vs fp32 mIoU {final_ev.of("fp32").mIoU:.2f}'
        if 'int8' not in layer_precisions(final).values():
            raise QuantizationRefused(
                f'{checkpoint}: accuracy control kept every layer in float to reach {mious} (plain PTQ: '
                f'{plain.of("int8").mIoU:.2f}, drop {plain.drop:.2f} > --max-drop {max_drop:g}): no int8 layer is '
                f'left; nothing written')
        if final_ev.drop > max_drop:
            raise QuantizationRefused(f'{checkpoint}: {mious} (drop {final_ev.drop:.2f} > --max-drop {max_drop:g}) '
                                      f'even with {len(in_float)} layer(s) kept in float; nothing written')
        plain_int8 = OpenVINONetwork(int8_model)
        control = dict(final_ev.int8_result(in_float), ranking_subset=ranking_subset or len(val),
                       speed={'plain_ptq_int8_ms': median_ms(lambda: plain_int8(example))})  # the float layers' cost

    header = (f'int8 (OpenVINO IR quantized by NNCF) of {Path(config)}\nweights: int8.pth (the IR as uint8 buffers; '
              f'also int8.xml / int8.bin), quantized from {Path(checkpoint)}')
    return write_result(
        out_dir, cfg, float_model, fp32_model, final, final_ev, example, header,
        method='ptq' if control is None else 'accuracy_control', plain_ptq=plain.int8_result(float_layers(int8_model)),
        accuracy_control=control, calibration=calib.record(), backend=backend_info(preset, fast_bias_correction),
        **common)


def _write_bf16(out_dir: Path, cfg: Config, float_model: nn.Module, fp32_model: Any, fp32: OpenVINONetwork,
                val: ValidationItems, example: torch.Tensor, common: Dict[str, Any],
                log: Callable[[str], None]) -> QuantizationReport:
    """The bf16 folder: the fp32 IR compiled in bf16, measured against fp32 on the validation split."""
    bf16 = folder_network(fp32_model, 'bf16')
    if bf16.executed_precision != 'bf16':  # only where the CPU flags were simulated or OpenVINO declined
        log(f'warning: OpenVINO compiled the bf16 network in {bf16.executed_precision} on this CPU; the report\'s bf16 '
            f'figures are {bf16.executed_precision}\'s (backend.executed_precision)')
    log(f'evaluating fp32 and bf16 on {len(val)} validation images')
    evaluation = evaluate(cfg, ir_segmentor(float_model), {'fp32': fp32, 'bf16': bf16}, val)
    log(f'bf16: {evaluation}')
    if evaluation.drop > common['max_drop']:
        raise QuantizationRefused(f'{common["checkpoint"]}: bf16 mIoU {evaluation.of("bf16").mIoU:.2f} vs fp32 mIoU '
                                  f'{evaluation.of("fp32").mIoU:.2f} (drop {evaluation.drop:.2f} > --max-drop '
                                  f'{common["max_drop"]:g}); nothing written')
    header = (f'bf16 (the fp32 OpenVINO IR, compiled with inference precision bf16) of {common["config"]}\nweights: '
              f'bf16.pth (the IR as uint8 buffers; also bf16.xml / bf16.bin), from {common["checkpoint"]}')
    backend = {'name': 'openvino', 'openvino': openvino_version(), 'target_device': 'CPU',
               'shapes': 'dynamic N x 3 x H x W', 'executed_precision': bf16.executed_precision,
               'compile_options': {k: str(v) for k, v in bf16.options.items()}}
    return write_result(out_dir, cfg, float_model, fp32_model, fp32_model, evaluation, example, header,
                        method='cast', precision='bf16', calibration={}, backend=backend, **common)

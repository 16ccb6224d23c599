"""What ``tools/quantize.py`` does: deploy form -> OpenVINO fp32 (proven equal) -> NNCF int8 -> mIoU of both on the
validation split -> accuracy-aware fallback when the drop is too large -> the self-contained int8 folder, or
nothing at all when even the fallback cannot keep the drop within ``max_drop``."""
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config

from repseg.apis import init_segmentor, read_config
from repseg.deploy import AlreadyDeployed, TensorModeLogits, compare_logits, convert_to_deploy
from repseg.runtime.openvino_runtime import OpenVINONetwork, compile_options, convert_module, openvino_version
from .artifacts import check_out_dir
from .calibration import CalibrationSet, network_inputs
from .diagnostics import range_report
from .evaluation import ValidationItems, evaluate, validation_fn
from .ptq import float_layers, layer_precisions, nncf_version, quantize_model, quantize_with_accuracy_control
from .result import Quantization, drop_of, ir_segmentor, median_ms, metrics_of, write_result

PARITY_RTOL = 1e-4


class QuantizationRefused(ValueError):
    """Even accuracy-aware quantization loses more than ``max_drop`` mIoU: nothing is written."""


def deploy_source(cfg: Config, checkpoint: Union[str, Path], workdir: Path,
                  log: Callable[[str], None]) -> Tuple[Union[Config, Path], Path, Optional[List[dict]]]:
    """(config, checkpoint, conversion proof) of the model to quantize: a train-form RepVGG segmentor is converted
    first with ``repseg.deploy`` (into ``workdir``, proven equal); deploy-form and non-RepVGG ones are used as they
    are."""
    backbone = cfg.get('model', {}).get('backbone') or {}
    if backbone.get('type') != 'RepVGG':
        return cfg, Path(checkpoint), None
    try:
        conversion = convert_to_deploy(cfg, checkpoint, workdir, log=lambda m: log(f'[deploy] {m}'))
    except AlreadyDeployed:
        return cfg, Path(checkpoint), None
    return conversion.config, conversion.checkpoint, [d.as_dict() for d in conversion.diffs]


def quantize_segmentor(config: Union[str, Path], checkpoint: Union[str, Path], out_dir: Union[str, Path],
                       num_calib: int = 300, max_drop: float = 1.0, preset: str = 'performance',
                       fast_bias_correction: bool = True, max_iterations: Optional[int] = None,
                       ranking_subset: Optional[int] = None,
                       agreement_images: Sequence[Union[str, Path]] = (), cfg_options: Optional[dict] = None,
                       log: Callable[[str], None] = print) -> Quantization:
    """Quantize a trained segmentor to int8 with OpenVINO + NNCF and write ``out_dir`` (see the module docstring).
    Raises QuantizationRefused (nothing written) when int8 loses more than ``max_drop`` mIoU points even with the
    accuracy-aware fallback. ``cfg_options``: checked ``--cfg-options`` (e.g. data roots), merged into the config."""
    from mmengine.registry import init_default_scope

    from repseg.engine import merge_checked_options
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    if max_drop < 0:
        raise ValueError(f'--max-drop {max_drop}: expected a non-negative number of mIoU points')
    if ranking_subset is not None and ranking_subset < 1:
        raise ValueError(f'--ranking-subset {ranking_subset}: expected at least 1 validation image')
    for image in agreement_images:
        if not Path(image).exists():
            raise FileNotFoundError(f'{image}: no such image file or folder (--agreement-images)')
    source_cfg = read_config(config)
    merge_checked_options(source_cfg, cfg_options, str(config))
    with tempfile.TemporaryDirectory(prefix='repseg-quantize-') as tmp:
        cfg_path, ckpt_path, conversion = deploy_source(source_cfg, checkpoint, Path(tmp), log)
        cfg = read_config(cfg_path)
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        float_model = init_segmentor(cfg_path, ckpt_path)

    # fp32 OpenVINO, proven equal to eager on the first validation input
    val = ValidationItems(cfg)
    example = network_inputs(float_model, val[0])
    network_module = TensorModeLogits(float_model).eval()
    log(f'converting to OpenVINO (dynamic N x 3 x H x W; traced at {tuple(example.shape)})')
    fp32_model = convert_module(network_module, example)
    fp32 = OpenVINONetwork(fp32_model)
    with torch.no_grad():
        parity = compare_logits('openvino fp32 vs eager, first val input', network_module(example), fp32(example),
                                rtol=PARITY_RTOL)
    log(str(parity))
    if not parity.passed:
        raise ValueError(f'{checkpoint}: OpenVINO fp32 differs from PyTorch beyond {PARITY_RTOL:g} x max|logit| '
                         f'({parity.max_rel:.2e}); nothing written')

    # int8 by plain post-training quantization
    calib = CalibrationSet(cfg, float_model, num_calib)
    log(f'calibrating on {len(calib)} images of the training split (test pipeline, '
        f'{float_model.test_cfg.get("mode", "whole")} mode)')
    int8_model = quantize_model(fp32_model, calib, preset, fast_bias_correction)
    ov_segmentor = ir_segmentor(float_model)
    log(f'evaluating fp32 and int8 on {len(val)} validation images')
    plain = evaluate(cfg, ov_segmentor, {'fp32': fp32, 'int8': OpenVINONetwork(int8_model)}, val)
    log(f'plain PTQ: fp32 mIoU {plain.metrics["fp32"]["mIoU"]:.2f}, int8 {plain.metrics["int8"]["mIoU"]:.2f} '
        f'(drop {drop_of(plain):.2f}), pixel agreement {100 * plain.agreement["int8"]:.2f}%')
    final, final_ev, method, control = int8_model, plain, 'ptq', None
    if drop_of(plain) > max_drop:
        log(f'drop {drop_of(plain):.2f} > --max-drop {max_drop:g}: accuracy-aware quantization (the most harmful '
            f'layers back to float)')
        validate = validation_fn(cfg, ov_segmentor, val, OpenVINONetwork.from_compiled)
        final = quantize_with_accuracy_control(fp32_model, calib, val, validate, max_drop, preset,
                                               fast_bias_correction, max_iterations, ranking_subset)
        final_ev = evaluate(cfg, ov_segmentor, {'fp32': fp32, 'int8': OpenVINONetwork(final)}, val)
        method = 'accuracy_control'
        control = {'int8': metrics_of(final_ev, 'int8'), 'drop': drop_of(final_ev),
                   'pixel_agreement': final_ev.agreement['int8'], 'layers_in_float': float_layers(final)}
        log(f'accuracy control: int8 mIoU {final_ev.metrics["int8"]["mIoU"]:.2f} (drop {drop_of(final_ev):.2f}) '
            f'with {len(control["layers_in_float"])} layers in float')
        if not any(p == 'int8' for p in layer_precisions(final).values()):
            raise QuantizationRefused(
                f'{checkpoint}: accuracy control kept every layer in float to reach int8 mIoU '
                f'{final_ev.metrics["int8"]["mIoU"]:.2f} vs fp32 mIoU {final_ev.metrics["fp32"]["mIoU"]:.2f} (plain '
                f'PTQ: {plain.metrics["int8"]["mIoU"]:.2f}, drop {drop_of(plain):.2f} > --max-drop {max_drop:g}): no '
                f'int8 layer is left; nothing written')
        if drop_of(final_ev) > max_drop:
            raise QuantizationRefused(
                f'{checkpoint}: int8 mIoU {final_ev.metrics["int8"]["mIoU"]:.2f} vs fp32 mIoU '
                f'{final_ev.metrics["fp32"]["mIoU"]:.2f} (drop {drop_of(final_ev):.2f} > --max-drop {max_drop:g}) '
                f'even with {len(control["layers_in_float"])} layer(s) kept in float; nothing written')

    if control is not None:  # what the layers kept in float cost
        control['speed'] = {'plain_ptq_int8_ms': median_ms(OpenVINONetwork(int8_model), example)}
    header = (f'int8 (OpenVINO IR quantized by NNCF) of {Path(config)}\nweights: int8.pth (the IR as uint8 buffers; '
              f'also int8.xml / int8.bin), quantized from {Path(checkpoint)}')
    report = {
        'method': method, 'deploy_conversion': conversion, 'max_drop': max_drop,
        'plain_ptq': {'int8': metrics_of(plain, 'int8'), 'drop': drop_of(plain),
                      'pixel_agreement': plain.agreement['int8'], 'layers_in_float': float_layers(int8_model)},
        'accuracy_control': control and {**control, 'ranking_subset': ranking_subset or len(val)},
        'calibration': {'images': len(calib), 'split': 'train', 'pipeline': 'test',
                        'mode': float_model.test_cfg.get('mode', 'whole'), 'first_images': calib.image_paths()[:3]},
        'parity_openvino_fp32_vs_eager': parity.as_dict(),
        'backend': backend_info(preset, fast_bias_correction),
        # from the train form when there is one: the same fused kernels, plus which branch sets their range
        'kernel_ranges': range_report(init_segmentor(source_cfg, checkpoint) if conversion else float_model),
    }
    return write_result(out_dir, cfg, float_model, fp32_model, final, final_ev, example, header, report,
                        {'config': str(config), 'checkpoint': str(checkpoint)}, agreement_images, log)


def backend_info(preset: str, fast_bias_correction: bool) -> Dict[str, Any]:
    """What quantized the model, for the report."""
    return {'name': 'openvino + nncf', 'openvino': openvino_version(), 'nncf': nncf_version(),
            'preset': preset, 'fast_bias_correction': fast_bias_correction, 'model_type': None,
            'target_device': 'CPU', 'shapes': 'dynamic N x 3 x H x W',
            'compile_options': {k: str(v) for k, v in compile_options().items()}}

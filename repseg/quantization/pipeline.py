"""``tools/quantize.py``: deploy form -> OpenVINO fp32 (proven equal) -> NNCF int8 (or, for bf16, the fp32 IR compiled
in bf16) -> mIoU of both on the validation split -> accuracy-aware fallback when the drop is too large -> the folder,
or nothing when the drop stays beyond ``max_drop``.

The self-contained folder (``write_result``, also where QAT ends): ``int8_config.py`` (the float config with the
``OpenVINOEncoderDecoder`` model), ``int8.pth`` (the IR in a state dict), the same IR as ``int8.xml`` / ``int8.bin``,
and ``quantization.json``; a bf16 folder's files are named ``bf16*`` (the fp32 IR, run in bf16)."""
import copy
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from torch import Tensor, nn

from repseg.apis import init_segmentor, read_config
from repseg.deploy import AlreadyDeployed, config_text, convert_to_deploy
from repseg.engine import merge_checked_options
from repseg.models import REPARAM_BACKBONES, SegLogits
from repseg.models.kernel_ranges import range_report
from repseg.runtime import FOLDER_FORMS, check_offered
from repseg.runtime.openvino_runtime import OpenVINONetwork, convert_module, ir_bytes, openvino_version
from repseg.utils import (LOGIT_RTOL, as_write_error, atomic_dir, check_out_dir, compare_logits, cpu_isa,
                          is_write_failure, machine_name, median_ms, torch_bytes, write_file)
from repseg.version import __version__
from .calibration import CalibrationSet, network_inputs
from .evaluation import Evaluation, ValidationItems, agreement_on_images, evaluate, validation_fn
from .ptq import (backend_info, float_layers, layer_precisions, quantize_model, quantize_with_accuracy_control,
                  weight_bytes)
from .report import PRECISIONS, REPORT, QuantizationReport
from .segmentor import folder_network, ir_model_config, ir_segmentor

#: A folder's files per precision: config, checkpoint (the IR inside a state dict), and the IR's xml and bin.
FOLDER_FILES = {precision: (f'{precision}_config.py', f'{precision}.pth', f'{precision}.xml', f'{precision}.bin')
                for precision in FOLDER_FORMS}
SEGMENTOR_MODULE = 'repseg.quantization.segmentor'
TIMING_REPEATS = 3


class QuantizationRefused(ValueError):
    """Even accuracy-aware quantization loses more than ``max_drop`` mIoU: nothing is written."""


@dataclass
class FloatSegmentor:
    """The float segmentor in deploy form and eval mode, its config and the converter's proof (None: not converted)."""

    model: nn.Module
    cfg: Config
    conversion: Optional[List[dict]]


def float_deploy_segmentor(cfg: Config, checkpoint: Union[str, Path],
                           log: Callable[[str], None] = print) -> FloatSegmentor:
    """Where PTQ and QAT start: a train-form RepVGG or DualRepVGG segmentor converted by ``repseg.deploy``, others as
    they are."""
    with tempfile.TemporaryDirectory(prefix='repseg-quantize-') as tmp:
        cfg_path, ckpt_path, conversion = cfg, Path(checkpoint), None
        if (cfg.get('model', {}).get('backbone') or {}).get('type') in REPARAM_BACKBONES:
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
    """Quantize a trained segmentor to ``precision`` and write ``out_dir``, or raise QuantizationRefused."""
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
    ov_segmentor, plain_int8 = ir_segmentor(float_model), OpenVINONetwork(int8_model)
    log(f'evaluating fp32 and int8 on {len(val)} validation images')
    plain = evaluate(cfg, ov_segmentor, {'fp32': fp32, 'int8': plain_int8}, val)
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
        control = dict(final_ev.int8_result(in_float), ranking_subset=ranking_subset or len(val),
                       speed={'plain_ptq_int8_ms': median_ms(lambda: plain_int8(example))})  # the float layers' cost

    return write_result(
        out_dir, cfg, float_model, fp32_model, final, final_ev, example,
        f'int8 (OpenVINO IR quantized by NNCF) of {Path(config)}', f'quantized from {Path(checkpoint)}',
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
    backend = {'name': 'openvino', 'openvino': openvino_version(), 'target_device': 'CPU',
               'shapes': 'dynamic N x 3 x H x W', 'executed_precision': bf16.executed_precision,
               'compile_options': {k: str(v) for k, v in bf16.options.items()}}
    return write_result(out_dir, cfg, float_model, fp32_model, fp32_model, evaluation, example,
                        f'bf16 (the fp32 OpenVINO IR, compiled with inference precision bf16) of {common["config"]}',
                        f'from {common["checkpoint"]}', method='cast', precision='bf16', calibration={},
                        backend=backend, **common)


def write_result(out_dir: Path, cfg: Config, float_model: nn.Module, fp32_model: Any, reduced_model: Any,
                 evaluation: Evaluation, example: Tensor, header: str, origin: str, *, config: str, checkpoint: str,
                 method: str, agreement_images: Sequence[Union[str, Path]] = (), force: bool = False,
                 log: Callable[[str], None] = print, precision: str = 'int8', **details: Any) -> QuantizationReport:
    """Write ``out_dir`` (all files or none, ``atomic_dir``) for ``reduced_model`` run in ``precision`` and evaluated as
    ``evaluation``; ``header`` / ``origin``: the config's title and where its weights come from; ``config`` /
    ``checkpoint``: the float model's; ``details``: the method's own report fields. The written config and state
    dict are read back first and must give the evaluated network."""
    fp32, reduced = OpenVINONetwork(fp32_model), folder_network(reduced_model, precision)
    fp32_ms, reduced_ms = (median_ms(lambda: net(example), repeats=TIMING_REPEATS) for net in (fp32, reduced))
    config_name, checkpoint_name, xml_name, bin_name = FOLDER_FILES[precision]
    try:  # beside the out-dir: the disk the result goes to
        Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
        xml, weights = ir_bytes(reduced_model, str(Path(out_dir).parent))
    except OSError as err:
        if not is_write_failure(err):
            raise
        raise as_write_error(err, Path(out_dir) / bin_name) from None
    state = {f'network.{k}': torch.frombuffer(bytearray(v), dtype=torch.uint8) for k, v in
             (('xml', xml), ('weights', weights))}
    # the float config (data and evaluators included) around the OpenVINO model, whose module it imports itself
    out = copy.deepcopy(cfg)
    imports = list(dict(out.get('custom_imports') or {}).get('imports', []))
    out.custom_imports = dict(imports=imports + [SEGMENTOR_MODULE] * (SEGMENTOR_MODULE not in imports),
                              allow_failed_imports=False)
    out.model = ir_model_config(float_model, {'xml': xml, 'weights': weights}, precision=precision)
    out.load_from, out.resume = None, False
    text = config_text(out, f'{header}\nweights: {checkpoint_name} (the IR as uint8 buffers; also {xml_name} / '
                            f'{bin_name}), {origin}')
    written = MODELS.build(Config.fromstring(text, '.py').model)  # the files are the model that was evaluated
    written.load_state_dict(state, strict=True)
    with torch.no_grad():
        diff = (written.network(example) - reduced(example)).abs().max().item()
    if diff != 0:
        raise RuntimeError(f'the {precision} model read back from its config and state dict differs from the evaluated '
                           f'one (max |diff| {diff:.3e}); nothing written')
    precisions = layer_precisions(reduced_model) if precision == 'int8' else {}
    report = QuantizationReport(
        config=config, checkpoint=checkpoint, method=method, precision=precision, fp32=evaluation.of('fp32'),
        **{precision: evaluation.of(precision)}, drop=evaluation.drop, pixel_agreement=evaluation.agreement[precision],
        layers_in_float=[n for n, p in precisions.items() if p == 'float'],
        layers_int8=sum(p == 'int8' for p in precisions.values()),
        validation=dict(images=evaluation.images, split='val', runtime=f'openvino, both fp32 and {precision}'),
        speed={'shape': list(example.shape), 'fp32_ms': fp32_ms, f'{precision}_ms': reduced_ms,
               'speedup': fp32_ms / reduced_ms, 'threads': torch.get_num_threads(), 'repeats': TIMING_REPEATS},
        weights_bytes={'fp32': weight_bytes(fp32_model), precision: weight_bytes(reduced_model)},
        agreement_images=agreement_on_images(ir_segmentor(float_model), {'fp32': fp32, precision: reduced},
                                             agreement_images),
        versions={'torch': torch.__version__, 'repseg': __version__, 'python': platform.python_version()},
        cpu={'name': machine_name(), **cpu_isa()}, **details)
    meta = {'dataset_meta': getattr(float_model, 'dataset_meta', None), 'quantization': report.summary(),
            'source_config': config, 'source_checkpoint': checkpoint, 'repseg_version': __version__}
    with atomic_dir(out_dir, force) as tmp:
        write_file(tmp / checkpoint_name, torch_bytes({'meta': meta, 'state_dict': state}))
        for name, data in ((xml_name, xml), (bin_name, weights), (config_name, text), (REPORT, report.to_json())):
            write_file(tmp / name, data)
    log(f'wrote {", ".join(str(out_dir / name) for name in (*FOLDER_FILES[precision], REPORT))}')
    return report

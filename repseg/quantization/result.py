"""The end that post-training quantization (``pipeline``) and quantization-aware training (``qat``) share: an int8
OpenVINO model, evaluated against its fp32 reference, becomes the self-contained folder of ``artifacts``.

``write_result`` times both networks, builds the int8 config, proves that the config and state dict read back give
the evaluated network bit for bit, measures agreement on extra images, and writes the folder all or nothing.
"""
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Union

import torch
from mmengine.config import Config
from torch import Tensor, nn

import repseg
from repseg.apis import segment
from repseg.deploy import config_text
from repseg.runtime.cpu_features import cpu_isa
from repseg.runtime.openvino_runtime import OpenVINONetwork, ir_bytes
from .artifacts import checkpoint_state, int8_config, ir_model_config, write_folder
from .evaluation import Evaluation
from .ptq import layer_precisions, weight_bytes


@dataclass
class Quantization:
    report: Dict[str, Any]
    files: List[Path]


def median_ms(network: Callable, x: Tensor, repeats: int = 3) -> float:
    network(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        network(x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def metrics_of(ev: Evaluation, name: str) -> Dict[str, float]:
    return {k: ev.metrics[name][k] for k in ('mIoU', 'mAcc', 'aAcc')}


def drop_of(ev: Evaluation) -> float:
    """fp32 mIoU minus int8 mIoU, in points (rounded as the metric is)."""
    return round(ev.metrics['fp32']['mIoU'] - ev.metrics['int8']['mIoU'], 2)


def machine_name() -> str:
    from repseg.benchmark.report import machine_name as name
    return name()


def ir_segmentor(float_model: nn.Module) -> nn.Module:
    """An ``OpenVINOEncoderDecoder`` with the float segmentor's settings and no IR: networks are plugged in with
    ``network.use``."""
    from mmseg.registry import MODELS
    model = MODELS.build(ir_model_config(float_model, {'xml': b'', 'weights': b''}, precision='fp32'))
    model.dataset_meta = getattr(float_model, 'dataset_meta', None)
    if hasattr(float_model, 'cfg'):  # the inference API (agreement images) reads the test pipeline from it
        model.cfg = float_model.cfg
    return model.eval()


def agreement_on_images(segmentor: nn.Module, networks: Dict[str, Callable], images: Sequence[Path]) -> List[dict]:
    """Pixel agreement int8 vs fp32 on extra images (e.g. real street frames), through the inference path."""
    from repseg.apis.batch import collect_images
    out = []
    for path, _ in collect_images(images):
        preds = {}
        for name, network in networks.items():
            segmentor.network.use(network)
            preds[name] = segment(segmentor, path).pred_sem_seg.data
        agree = float((preds['fp32'] == preds['int8']).float().mean())
        out.append({'image': str(path), 'shape': list(preds['fp32'].shape[-2:]), 'pixel_agreement': agree})
    return out


def check_written_form(text: str, ir: Dict[str, bytes], network: Callable, example: Tensor) -> None:
    """Build the int8 segmentor from the config text as it will be read back, load the state dict strictly, and
    require the same logits as the in-memory int8 network (the files are the model that was evaluated)."""
    from mmseg.registry import MODELS
    cfg = Config.fromstring(text, '.py')
    model = MODELS.build(cfg.model)
    model.load_state_dict(checkpoint_state(ir), strict=True)
    with torch.no_grad():
        diff = (model.network(example) - network(example)).abs().max().item()
    if diff != 0:
        raise RuntimeError(f'the int8 model read back from its config and state dict differs from the evaluated one '
                           f'(max |diff| {diff:.3e}); nothing written')


def write_result(out_dir: Path, cfg: Config, float_model: nn.Module, fp32_model: Any, int8_model: Any,
                 evaluation: Evaluation, example: Tensor, header: str, report_extra: Dict[str, Any],
                 source: Dict[str, str], agreement_images: Sequence[Union[str, Path]] = (),
                 log: Callable[[str], None] = print) -> Quantization:
    """Write ``out_dir`` for ``int8_model`` (an ``openvino.Model``) evaluated as ``evaluation`` (networks 'fp32'
    and 'int8'). ``source``: the float ``config`` and ``checkpoint`` it came from; ``report_extra``: what the
    method adds to ``quantization.json`` (``method`` at least)."""
    fp32, int8 = OpenVINONetwork(fp32_model), OpenVINONetwork(int8_model)
    fp32_ms, int8_ms = median_ms(fp32, example), median_ms(int8, example)
    ir = dict(zip(('xml', 'weights'), ir_bytes(int8_model)))
    text = config_text(int8_config(cfg, ir_model_config(float_model, ir)), header)
    check_written_form(text, ir, int8, example)
    agreement = agreement_on_images(ir_segmentor(float_model), {'fp32': fp32, 'int8': int8}, agreement_images)
    precisions = layer_precisions(int8_model)
    report = {
        'config': source['config'], 'checkpoint': source['checkpoint'], **report_extra,
        'fp32': metrics_of(evaluation, 'fp32'), 'int8': metrics_of(evaluation, 'int8'), 'drop': drop_of(evaluation),
        'pixel_agreement': evaluation.agreement['int8'],
        'layers_in_float': [n for n, p in precisions.items() if p == 'float'],
        'layers_int8': sum(p == 'int8' for p in precisions.values()),
        'validation': {'images': evaluation.images, 'split': 'val', 'runtime': 'openvino, both fp32 and int8'},
        'speed': {'shape': list(example.shape), 'fp32_ms': fp32_ms, 'int8_ms': int8_ms,
                  'speedup': fp32_ms / int8_ms, 'threads': torch.get_num_threads(), 'repeats': 3},
        'weights_bytes': {'fp32': weight_bytes(fp32_model), 'int8': weight_bytes(int8_model)},
        'agreement_images': agreement,
        'versions': {'torch': torch.__version__, 'repseg': repseg.__version__, 'python': platform.python_version()},
        'cpu': {'name': machine_name(), **cpu_isa()},
    }
    ckpt_meta = {'dataset_meta': getattr(float_model, 'dataset_meta', None), 'quantization': {
        k: report[k] for k in ('method', 'fp32', 'int8', 'drop', 'pixel_agreement', 'layers_in_float')},
        'source_config': source['config'], 'source_checkpoint': source['checkpoint'],
        'repseg_version': repseg.__version__}
    files = write_folder(out_dir, text, checkpoint_state(ir), ckpt_meta, ir, report)
    log(f'wrote {", ".join(str(f) for f in files)}')
    return Quantization(report, files)

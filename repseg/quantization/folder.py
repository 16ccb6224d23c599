"""The self-contained int8 folder, and the end that post-training quantization (``pipeline``) and quantization-aware
training (``qat``) share: an int8 OpenVINO model, evaluated against its fp32 reference, becomes that folder.

The folder: ``int8_config.py`` (the float config with the ``OpenVINOEncoderDecoder`` model), ``int8.pth`` (the IR
inside a state dict), ``int8.xml`` / ``int8.bin`` (the same IR for OpenVINO users) and ``quantization.json`` (a
``QuantizationReport``). ``write_result`` times both networks, builds the int8 config, proves that the config and
state dict read back give the evaluated network bit for bit, measures agreement on extra images, and writes the
five files all or nothing.
"""
import contextlib
import copy
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

import torch
from mmengine.config import Config, ConfigDict
from mmseg.registry import MODELS
from torch import Tensor, nn

from repseg.deploy import config_text
from repseg.runtime.openvino_runtime import OpenVINONetwork, ir_bytes
from repseg.utils import atomic_write, cpu_isa, machine_name, median_ms
from repseg.version import __version__
from .evaluation import Evaluation, agreement_on_images
from .ptq import layer_precisions, weight_bytes
from .report import REPORT, QuantizationReport, Speed, Validation, WeightBytes
from .segmentor import ir_model_config, ir_segmentor

INT8_CONFIG, INT8_CHECKPOINT, INT8_XML, INT8_BIN = 'int8_config.py', 'int8.pth', 'int8.xml', 'int8.bin'
OUTPUTS = (INT8_CONFIG, INT8_CHECKPOINT, INT8_XML, INT8_BIN, REPORT)
SEGMENTOR_MODULE = 'repseg.quantization.segmentor'
TIMING_REPEATS = 3


@dataclass
class Quantization:
    """What was written: the report and the five files."""

    report: QuantizationReport
    files: List[Path]


def check_out_dir(out_dir: Path) -> None:
    """Refuse a folder that holds an earlier result (nothing is ever overwritten) or is not a folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f'{out_dir}: exists and is not a folder; expected a new or empty --out-dir')
    earlier = [name for name in OUTPUTS if (out_dir / name).exists()]
    if earlier:
        raise FileExistsError(f'{out_dir}: holds an earlier result ({", ".join(earlier)}); choose another --out-dir')


def int8_config(cfg: Config, model: ConfigDict) -> Config:
    """``cfg`` (the float config, data and evaluators included) with ``model`` swapped for the OpenVINO one; the
    segmentor's module is imported by the config itself (``custom_imports``), so any MMSegmentation tool can read it."""
    out = copy.deepcopy(cfg)
    out.model = model
    imports = list(dict(out.get('custom_imports') or {}).get('imports', []))
    out.custom_imports = dict(imports=imports + [SEGMENTOR_MODULE] * (SEGMENTOR_MODULE not in imports),
                              allow_failed_imports=False)
    out.load_from = None
    out.resume = False
    return out


def checkpoint_state(ir: Dict[str, bytes]) -> Dict[str, torch.Tensor]:
    """The int8 state dict: the IR files as uint8 tensors under the segmentor's ``network`` buffers."""
    return {'network.xml': torch.frombuffer(bytearray(ir['xml']), dtype=torch.uint8),
            'network.weights': torch.frombuffer(bytearray(ir['weights']), dtype=torch.uint8)}


def write_folder(out_dir: Path, config_text_: str, state: Dict[str, torch.Tensor], meta: Dict[str, Any],
                 ir: Dict[str, bytes], report: QuantizationReport) -> List[Path]:
    """Write the five files as temporary files, and rename them into place only once all are written (the
    checkpoint last); an error on the way leaves nothing."""
    paths = {name: out_dir / name for name in OUTPUTS}
    contents: List[Tuple[str, str, Any]] = [
        (INT8_XML, 'wb', ir['xml']), (INT8_BIN, 'wb', ir['weights']), (INT8_CONFIG, 'w', config_text_),
        (REPORT, 'w', report.to_json())]
    with contextlib.ExitStack() as stack:
        ckpt = stack.enter_context(atomic_write(paths[INT8_CHECKPOINT], 'wb'))  # entered first: renamed last
        torch.save({'meta': meta, 'state_dict': state}, ckpt)
        for name, mode, data in contents:
            stack.enter_context(atomic_write(paths[name], mode)).write(data)
    return [paths[name] for name in OUTPUTS]


def check_written_form(text: str, ir: Dict[str, bytes], network: Callable, example: Tensor) -> None:
    """Build the int8 segmentor from the config text as it will be read back, load the state dict strictly, and
    require the same logits as the in-memory int8 network (the files are the model that was evaluated)."""
    cfg = Config.fromstring(text, '.py')
    model = MODELS.build(cfg.model)
    model.load_state_dict(checkpoint_state(ir), strict=True)
    with torch.no_grad():
        diff = (model.network(example) - network(example)).abs().max().item()
    if diff != 0:
        raise RuntimeError(f'the int8 model read back from its config and state dict differs from the evaluated one '
                           f'(max |diff| {diff:.3e}); nothing written')


def write_result(out_dir: Path, cfg: Config, float_model: nn.Module, fp32_model: Any, int8_model: Any,
                 evaluation: Evaluation, example: Tensor, header: str, *, config: str, checkpoint: str, method: str,
                 agreement_images: Sequence[Union[str, Path]] = (), log: Callable[[str], None] = print,
                 **details: Any) -> Quantization:
    """Write ``out_dir`` for ``int8_model`` (an ``openvino.Model``) evaluated as ``evaluation`` (networks 'fp32'
    and 'int8'). ``config`` / ``checkpoint``: the float model it came from; ``details``: the method's own
    ``QuantizationReport`` fields (calibration, backend, kernel_ranges and the method-specific ones)."""
    fp32, int8 = OpenVINONetwork(fp32_model), OpenVINONetwork(int8_model)
    fp32_ms = median_ms(lambda: fp32(example), repeats=TIMING_REPEATS)
    int8_ms = median_ms(lambda: int8(example), repeats=TIMING_REPEATS)
    ir = dict(zip(('xml', 'weights'), ir_bytes(int8_model)))
    text = config_text(int8_config(cfg, ir_model_config(float_model, ir)), header)
    check_written_form(text, ir, int8, example)
    agreement = agreement_on_images(ir_segmentor(float_model), {'fp32': fp32, 'int8': int8}, agreement_images)
    precisions = layer_precisions(int8_model)
    report = QuantizationReport(
        config=config, checkpoint=checkpoint, method=method,
        fp32=evaluation.of('fp32'), int8=evaluation.of('int8'), drop=evaluation.drop,
        pixel_agreement=evaluation.agreement['int8'],
        layers_in_float=[n for n, p in precisions.items() if p == 'float'],
        layers_int8=sum(p == 'int8' for p in precisions.values()),
        validation=Validation(evaluation.images, 'val', 'openvino, both fp32 and int8'),
        speed=Speed(list(example.shape), fp32_ms, int8_ms, fp32_ms / int8_ms, torch.get_num_threads(),
                    TIMING_REPEATS),
        weights_bytes=WeightBytes(weight_bytes(fp32_model), weight_bytes(int8_model)),
        agreement_images=agreement,
        versions={'torch': torch.__version__, 'repseg': __version__, 'python': platform.python_version()},
        cpu={'name': machine_name(), **cpu_isa()}, **details)
    ckpt_meta = {'dataset_meta': getattr(float_model, 'dataset_meta', None), 'quantization': report.summary(),
                 'source_config': config, 'source_checkpoint': checkpoint, 'repseg_version': __version__}
    files = write_folder(out_dir, text, checkpoint_state(ir), ckpt_meta, ir, report)
    log(f'wrote {", ".join(str(f) for f in files)}')
    return Quantization(report, files)

"""The self-contained folder, the end that post-training quantization and bf16 (``pipeline``) and quantization-aware
training (``qat``) share: ``int8_config.py`` (the float config with the ``OpenVINOEncoderDecoder`` model),
``int8.pth`` (the IR inside a state dict), ``int8.xml`` / ``int8.bin`` (the same IR for OpenVINO users) and
``quantization.json``; a bf16 folder has the same files named ``bf16*`` (its IR is the fp32 one, compiled in bf16).
"""
import copy
import platform
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import torch
from mmengine.config import Config
from mmseg.registry import MODELS
from torch import Tensor, nn

from repseg.deploy import config_text
from repseg.runtime import FOLDER_FORMS
from repseg.runtime.openvino_runtime import OpenVINONetwork, ir_bytes
from repseg.utils import (as_write_error, atomic_dir, cpu_isa, is_write_failure, machine_name, median_ms, torch_bytes,
                          write_file)
from repseg.version import __version__
from .evaluation import Evaluation, agreement_on_images
from .ptq import layer_precisions, weight_bytes
from .report import REPORT, QuantizationReport
from .segmentor import folder_network, ir_model_config, ir_segmentor

#: A folder's files per precision: config, checkpoint (the IR inside a state dict), and the IR's xml and bin.
FOLDER_FILES = {precision: (f'{precision}_config.py', f'{precision}.pth', f'{precision}.xml', f'{precision}.bin')
                for precision in FOLDER_FORMS}
SEGMENTOR_MODULE = 'repseg.quantization.segmentor'
TIMING_REPEATS = 3


def write_result(out_dir: Path, cfg: Config, float_model: nn.Module, fp32_model: Any, reduced_model: Any,
                 evaluation: Evaluation, example: Tensor, header: str, *, config: str, checkpoint: str, method: str,
                 agreement_images: Sequence[Union[str, Path]] = (), force: bool = False,
                 log: Callable[[str], None] = print, precision: str = 'int8', **details: Any) -> QuantizationReport:
    """Write ``out_dir`` for ``reduced_model`` (an ``openvino.Model``, run in ``precision``: 'int8', or 'bf16' for the
    fp32 IR compiled in bf16) evaluated as ``evaluation`` (networks 'fp32' and ``precision``), all files or none.
    ``config`` / ``checkpoint``: the float model it came from; ``details``: the method's own report fields. The
    written config and state dict are read back first and must give the evaluated network. The folder is built
    beside ``out_dir`` and moved into place whole (``atomic_dir``; ``force`` replaces one that holds files)."""
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
    text = config_text(out, header)
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

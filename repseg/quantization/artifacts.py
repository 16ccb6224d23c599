"""The self-contained int8 folder: ``int8_config.py``, ``int8.pth`` (the IR inside a state dict), ``int8.xml`` /
``int8.bin`` (the same IR for OpenVINO users) and ``quantization.json``, written all or nothing."""
import contextlib
import copy
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch
from mmengine.config import Config, ConfigDict
from torch import nn

from repseg.utils.io import atomic_write
from .segmentor import SEGMENTOR_TYPE, ir_digest

INT8_CONFIG, INT8_CHECKPOINT, INT8_XML, INT8_BIN, REPORT = (
    'int8_config.py', 'int8.pth', 'int8.xml', 'int8.bin', 'quantization.json')
OUTPUTS = (INT8_CONFIG, INT8_CHECKPOINT, INT8_XML, INT8_BIN, REPORT)
SEGMENTOR_MODULE = 'repseg.quantization.segmentor'


def check_out_dir(out_dir: Path) -> None:
    """Refuse a folder that holds an earlier result (nothing is ever overwritten) or is not a folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f'{out_dir}: exists and is not a folder; expected a new or empty --out-dir')
    earlier = [name for name in OUTPUTS if (out_dir / name).exists()]
    if earlier:
        raise FileExistsError(f'{out_dir}: holds an earlier result ({", ".join(earlier)}); choose another --out-dir')


def ir_model_config(segmentor: nn.Module, ir: Dict[str, bytes], precision: str = 'int8') -> ConfigDict:
    """The ``model`` of the int8 config: the float segmentor's preprocessing and test settings around the IR."""
    cfg = segmentor.cfg.model if hasattr(segmentor, 'cfg') else None
    data_preprocessor = copy.deepcopy(cfg.get('data_preprocessor')) if cfg is not None else None
    return ConfigDict(type=SEGMENTOR_TYPE, data_preprocessor=data_preprocessor,
                      test_cfg=copy.deepcopy(dict(segmentor.test_cfg)), num_classes=int(segmentor.num_classes),
                      out_channels=int(segmentor.out_channels), align_corners=bool(segmentor.align_corners),
                      ir=dict(xml_bytes=len(ir['xml']), bin_bytes=len(ir['weights']),
                              sha256=ir_digest(ir['xml'], ir['weights']), precision=precision))


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
                 ir: Dict[str, bytes], report: Dict[str, Any]) -> List[Path]:
    """Write the five files as temporary files, and rename them into place only once all are written (the
    checkpoint last); an error on the way leaves nothing."""
    paths = {name: out_dir / name for name in OUTPUTS}
    contents: List[Tuple[str, str, Any]] = [
        (INT8_XML, 'wb', ir['xml']), (INT8_BIN, 'wb', ir['weights']), (INT8_CONFIG, 'w', config_text_),
        (REPORT, 'w', json.dumps(report, indent=1) + '\n')]
    with contextlib.ExitStack() as stack:
        ckpt = stack.enter_context(atomic_write(paths[INT8_CHECKPOINT], 'wb'))  # entered first: renamed last
        torch.save({'meta': meta, 'state_dict': state}, ckpt)
        for name, mode, data in contents:
            stack.enter_context(atomic_write(paths[name], mode)).write(data)
    return [paths[name] for name in OUTPUTS]

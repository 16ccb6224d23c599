"""Build a trained segmentor for inference and run it on one image, with mmseg's ``init_model`` and
``inference_model`` but not its checkpoint loading, which calls ``torch.load`` without ``weights_only`` and loads
non-strictly (a wrong checkpoint would only warn).
"""
import copy
from pathlib import Path
from typing import Any, Dict, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmseg.apis import inference_model, init_model
from mmseg.datasets import CityscapesDataset
from mmseg.structures import SegDataSample
from torch import nn

from repseg.engine.checkpoints import StateDict, check_state_dict, naming, read_checkpoint
from repseg.runtime import with_runtime
from repseg.utils.io import is_cut_short
from .config import ConfigLike, inference_pipeline, model_config

ImageLike = Union[str, Path, np.ndarray]


def build_segmentor(cfg: Config, state: StateDict, meta: Dict[str, Any], source: Any = 'checkpoint') -> nn.Module:
    """The segmentor of a ``model_config`` with ``state`` checked and loaded strictly, in eval mode on the CPU."""
    cfg = copy.deepcopy(cfg)
    with naming(cfg.filename):
        model = init_model(cfg, checkpoint=None, device='cpu')
    check_state_dict(state, model.state_dict(), source)
    with naming(source):
        model.load_state_dict(state, strict=True)
    model.dataset_meta = meta.get('dataset_meta') or dict(CityscapesDataset.METAINFO)
    model.cfg.test_pipeline = inference_pipeline(cfg)
    return model.eval()


def init_segmentor(config: ConfigLike, checkpoint: Any, device: str = 'cpu', runtime: str = 'native') -> nn.Module:
    """The segmentor of ``config`` with ``checkpoint``'s weights (checked, loaded strictly; SyncBN built as BN) in eval
    mode on ``device``, run by ``runtime`` ('native': the fastest in the model's own precision; ``with_runtime``)."""
    state, meta = read_checkpoint(checkpoint)
    return with_runtime(build_segmentor(model_config(config), state, meta, checkpoint).to(device), runtime)


def load_image(img: ImageLike) -> np.ndarray:
    """An HxWx3 BGR uint8 image from a path or an array (checked)."""
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f'image array: expected HxWx3 BGR uint8, got shape {img.shape} dtype {img.dtype}')
        return img
    path = Path(img)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such image file')
    array = None if is_cut_short(path) else cv2.imread(str(path), cv2.IMREAD_COLOR)
    if array is None:
        raise ValueError(f'{path}: not a readable image (truncated, corrupt or not an image file)')
    return array


def segment(model: nn.Module, img: ImageLike) -> SegDataSample:
    """mmseg's test-time result (``seg_logits``, ``pred_sem_seg``) for one image, always passed as an array so that the
    pipeline built once by ``init_segmentor`` stays valid."""
    with torch.no_grad():
        return inference_model(model, load_image(img))


def inference(model: nn.Module, img: ImageLike) -> np.ndarray:
    """The HxW trainId map (uint8, the image's size) of an image path or an HxWx3 BGR uint8 array."""
    pred = segment(model, img).pred_sem_seg.data[0].cpu().numpy()
    return pred.astype(np.uint8 if pred.max(initial=0) < 256 else np.uint16)

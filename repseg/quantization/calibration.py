"""Calibration inputs: exactly what the network sees at test time, so that int8 ranges fit the real activations.

``CalibrationSet`` takes N images of the config's *training* split, sends each through the config's *test*
pipeline and the segmentor's data preprocessor, and then through MMSegmentation's own ``inference`` with a
recording ``encode_decode``: in ``whole`` mode the network input is the whole image, in ``slide`` mode one of its
windows (image i gives window i modulo the number of windows, so that N images cover every window position).
Items are produced lazily (NNCF iterates the set; nothing large is held in memory).

``street_frames`` is for the benchmark, which has no dataset: crops of the real Cityscapes frame in
``../shared/data/`` when it is there, generated street scenes otherwise (the returned source says which).
"""
import copy
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmseg.registry import DATASETS
from torch import Tensor, nn

from repseg.datasets.sample_scenes import draw_scene
from .report import Calibration

#: MMSegmentation's ImageNet normalization (RGB order), used by every config of this project.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
SHARED_FRAME = Path(__file__).resolve().parents[2].parent / 'shared' / 'data' / 'cityscapes_demo_1024x512.png'


def evenly_spaced(total: int, count: int) -> List[int]:
    """``min(count, total)`` indices spread over ``range(total)`` (deterministic, covering the whole split)."""
    count = min(count, total)
    return sorted({int(i) for i in np.linspace(0, total - 1, count).round()}) if count else []


def build_split(cfg: Config, loader: str, pipeline: Optional[Sequence[dict]] = None) -> Any:
    """The dataset of ``cfg[loader]`` (e.g. 'train_dataloader'), optionally with another pipeline."""
    if loader not in cfg or 'dataset' not in cfg[loader]:
        raise KeyError(f'{cfg.filename}: has no {loader}.dataset; expected an MMSegmentation config with data')
    dataset_cfg = copy.deepcopy(cfg[loader]['dataset'])
    if pipeline is not None:
        dataset_cfg['pipeline'] = copy.deepcopy(list(pipeline))
    dataset = DATASETS.build(dataset_cfg)
    if len(dataset) == 0:
        raise ValueError(f'{cfg.filename}: {loader} has no images (data_root {dataset_cfg.get("data_root")!r})')
    return dataset


def test_pipeline(cfg: Config) -> List[dict]:
    pipeline = cfg.get('test_pipeline') or cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')
    if not pipeline:
        raise KeyError(f'{cfg.filename}: has neither test_pipeline nor test_dataloader.dataset.pipeline')
    return [dict(t) for t in pipeline]


class _Recorded(Exception):
    """Raised by the recording ``encode_decode`` once it has the window it wants (stops the sliding loop)."""


def network_inputs(segmentor: nn.Module, data: dict, window: int = 0) -> Tensor:
    """The tensor ``segmentor``'s network receives for ``data`` (a collated test batch) in MMSegmentation's test path;
    in slide mode the window ``window`` modulo the number of windows."""
    data = segmentor.data_preprocessor(data, False)
    metas = [s.metainfo for s in data['data_samples']]
    seen: List[Tensor] = []
    original = segmentor.encode_decode

    def record(inputs: Tensor, batch_img_metas: list) -> Tensor:
        seen.append(inputs)
        return inputs.new_zeros((inputs.shape[0], segmentor.out_channels, *inputs.shape[2:]))

    segmentor.encode_decode = record
    try:
        with torch.no_grad():
            segmentor.inference(data['inputs'], metas)
    finally:
        segmentor.encode_decode = original
    return seen[window % len(seen)].contiguous()


class CalibrationSet:
    """N network inputs from the training split through the test pipeline (see the module docstring); a sequence
    of float32 N x 3 x H x W numpy arrays, as NNCF feeds them to the OpenVINO model."""

    def __init__(self, cfg: Config, segmentor: nn.Module, num: int):
        if num < 1:
            raise ValueError(f'--num-calib {num}: expected at least 1 calibration image')
        self.dataset = build_split(cfg, 'train_dataloader', test_pipeline(cfg))
        self.indices = evenly_spaced(len(self.dataset), num)
        self.segmentor = segmentor

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self.indices):
            raise IndexError(i)
        data = pseudo_collate([self.dataset[self.indices[i]]])
        return network_inputs(self.segmentor, data, window=i).numpy()

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def image_paths(self) -> List[str]:
        return [self.dataset.get_data_info(i)['img_path'] for i in self.indices]

    @property
    def mode(self) -> str:
        """The segmentor's test mode ('whole' or 'slide')."""
        return self.segmentor.test_cfg.get('mode', 'whole')

    def record(self) -> Calibration:
        """What the report says about the calibration set."""
        return Calibration(len(self), 'train', 'test', self.mode, self.image_paths()[:3])


def normalize(image_bgr: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
              bgr_to_rgb: bool = True) -> Tensor:
    """1 x 3 x H x W float tensor as MMSegmentation's data preprocessor makes it from a BGR uint8 image."""
    img = image_bgr[..., ::-1] if bgr_to_rgb else image_bgr
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
    return ((x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1))[None]


def _street_image(min_h: int, min_w: int) -> Tuple[np.ndarray, str]:
    if SHARED_FRAME.is_file():
        image, source = cv2.imread(str(SHARED_FRAME), cv2.IMREAD_COLOR), f'crops of {SHARED_FRAME.name}'
    else:
        rgb, _ = draw_scene(np.random.default_rng(0), 1024, 512)
        image, source = np.ascontiguousarray(rgb[..., ::-1]), 'crops of a generated sample scene (seed 0)'
    scale = max(min_h / image.shape[0], min_w / image.shape[1], 1.0)
    if scale > 1:
        image = cv2.resize(image, (int(np.ceil(image.shape[1] * scale)), int(np.ceil(image.shape[0] * scale))),
                           interpolation=cv2.INTER_LINEAR)
    return image, source


def street_frames(shape: Tuple[int, int], count: int = 4, mean: Sequence[float] = IMAGENET_MEAN,
                  std: Sequence[float] = IMAGENET_STD, bgr_to_rgb: bool = True) -> Tuple[List[Tensor], str]:
    """``count`` normalized 1 x 3 x H x W crops of a street frame (upscaled if it is smaller than H x W), at
    positions spread over the frame from top right to bottom left, and where they come from. Callers that need a
    held-out frame take one more and keep the last one apart."""
    h, w = int(shape[0]), int(shape[1])
    image, source = _street_image(h, w)
    ys = np.linspace(0, image.shape[0] - h, count).round().astype(int)
    xs = np.linspace(0, image.shape[1] - w, count).round().astype(int)[::-1]
    return [normalize(image[ys[i]:ys[i] + h, xs[i]:xs[i] + w], mean, std, bgr_to_rgb) for i in range(count)], source

"""Calibration inputs: exactly what the network sees at test time (training images through the test pipeline and
MMSegmentation's ``inference``), so that int8 ranges fit the real activations; ``street_frames`` for the benchmark."""
import copy
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmseg.registry import DATASETS
from torch import Tensor, nn

from repseg.datasets.sample_scenes import draw_scene

#: A street photo to cut calibration crops from (e.g. a Cityscapes frame), where one is at hand; else a generated scene.
STREET_FRAME_ENV = 'REPSEG_STREET_FRAME'


def build_split(cfg: Config, loader: str, pipeline: Optional[Sequence[dict]] = None) -> Any:
    """The dataset of ``cfg[loader]`` (e.g. 'train_dataloader'), optionally with another pipeline."""
    if 'dataset' not in (cfg.get(loader) or {}):
        raise KeyError(f'{cfg.filename}: has no {loader}.dataset; expected an MMSegmentation config with data')
    dataset_cfg = copy.deepcopy(cfg[loader]['dataset'])
    if pipeline is not None:
        dataset_cfg['pipeline'] = copy.deepcopy(list(pipeline))
    dataset = DATASETS.build(dataset_cfg)
    if len(dataset) == 0:
        raise ValueError(f'{cfg.filename}: {loader} has no images (data_root {dataset_cfg.get("data_root")!r})')
    return dataset


def network_inputs(segmentor: nn.Module, data: dict, window: int = 0) -> Tensor:
    """The tensor the network receives for a collated test batch (slide mode: window ``window`` modulo their count)."""
    data = segmentor.data_preprocessor(data, False)
    seen: List[Tensor] = []
    original = segmentor.encode_decode

    def record(inputs: Tensor, batch_img_metas: list) -> Tensor:
        seen.append(inputs)
        return inputs.new_zeros((inputs.shape[0], segmentor.out_channels, *inputs.shape[2:]))

    segmentor.encode_decode = record
    try:
        with torch.no_grad():
            segmentor.inference(data['inputs'], [s.metainfo for s in data['data_samples']])
    finally:
        segmentor.encode_decode = original
    return seen[window % len(seen)].contiguous()


class CalibrationSet:
    """``num`` network inputs (float32 numpy, as NNCF feeds OpenVINO) of images spread evenly over the training set."""

    def __init__(self, cfg: Config, segmentor: nn.Module, num: int):
        if num < 1:
            raise ValueError(f'--num-calib {num}: expected at least 1 calibration image')
        pipeline = cfg.get('test_pipeline') or cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')
        if not pipeline:
            raise KeyError(f'{cfg.filename}: has neither test_pipeline nor test_dataloader.dataset.pipeline')
        self.dataset = build_split(cfg, 'train_dataloader', pipeline)
        total = len(self.dataset)
        self.indices = sorted({int(i) for i in np.linspace(0, total - 1, min(num, total)).round()})
        self.segmentor, self.mode = segmentor, segmentor.test_cfg.get('mode', 'whole')

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:  # IndexError past the end also ends iteration
        data = pseudo_collate([self.dataset[self.indices[i]]])
        return network_inputs(self.segmentor, data, window=i).numpy()

    def record(self) -> Dict[str, Any]:
        """The report's ``calibration`` block."""
        first = [self.dataset.get_data_info(i)['img_path'] for i in self.indices[:3]]
        return dict(images=len(self), split='train', pipeline='test', mode=self.mode, first_images=first)


def street_frames(shape: Tuple[int, int], count: int, mean: Sequence[float], std: Sequence[float],
                  bgr_to_rgb: bool) -> Tuple[List[Tensor], str]:
    """``count`` normalized crops over the street photo named by $REPSEG_STREET_FRAME (else a generated scene), and
    their source."""
    h, w = int(shape[0]), int(shape[1])
    frame = Path(os.environ.get(STREET_FRAME_ENV, ''))
    if frame.is_file():
        image, source = cv2.imread(str(frame), cv2.IMREAD_COLOR), f'crops of {frame.name}'
    else:
        rgb, _ = draw_scene(np.random.default_rng(0), 1024, 512)
        image, source = np.ascontiguousarray(rgb[..., ::-1]), 'crops of a generated sample scene (seed 0)'
    scale = max(h / image.shape[0], w / image.shape[1], 1.0)
    if scale > 1:
        image = cv2.resize(image, (int(np.ceil(image.shape[1] * scale)), int(np.ceil(image.shape[0] * scale))),
                           interpolation=cv2.INTER_LINEAR)
    ys = np.linspace(0, image.shape[0] - h, count).round().astype(int)
    xs = np.linspace(0, image.shape[1] - w, count).round().astype(int)[::-1]
    mean, std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    crops = [image[y:y + h, x:x + w, ::-1 if bgr_to_rgb else 1] for y, x in zip(ys, xs)]
    return [((torch.from_numpy(np.ascontiguousarray(c.transpose(2, 0, 1))).float() - mean) / std)[None]
            for c in crops], source

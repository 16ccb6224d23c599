"""Write procedural scenes (``sample_scenes``) as a small dataset in the exact Cityscapes layout and naming, so that
MMSegmentation's ``CityscapesDataset`` and the Cityscapes configs read it unchanged.

All or nothing: the dataset is built in a temporary folder beside ``out`` and renamed into place at the end, so an
interrupted run leaves no half dataset. A marker file tells a previous sample dataset (which may be replaced) from
anything else (which is never overwritten). Each image has its own seed derived from (seed, split, index): the same
seed gives byte-identical files.
"""
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Tuple, Union

import cv2
import numpy as np

from .labels import CLASS_NAMES, NUM_CLASSES, id_to_color_lut, id_to_train_id_lut
from .sample_scenes import draw_scene

MARKER = 'repseg_sample_dataset.json'
CITIES = {'train': ('synthburg', 'mockstadt'), 'val': ('samplingen',)}
FRAME = '000019'  # Cityscapes annotates the 20th frame of each snippet
_SPLIT_CODE = {'train': 0, 'val': 1}
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 3]


@dataclass
class SampleSummary:
    """What was written: image counts per split and pixel share per trainId class (ignore excluded)."""
    out: Path
    counts: Dict[str, int]
    pixel_share: Dict[str, Dict[str, float]] = field(default_factory=dict)
    images_with: Dict[str, Dict[str, int]] = field(default_factory=dict)

    def format(self) -> str:
        lines = [f'{self.out}: ' + ', '.join(f'{n} {s} images' for s, n in self.counts.items())]
        train = self.pixel_share.get('train', {})
        present = [c for c in CLASS_NAMES if train.get(c, 0) > 0]
        lines.append(f'{len(present)} of {NUM_CLASSES} classes present in train; pixel share train / val '
                     f'(images with the class in train):')
        for name in sorted(present, key=lambda c: -train[c]):
            val = self.pixel_share.get('val', {}).get(name, 0.0)
            lines.append(f'  {name:<14} {100 * train[name]:5.1f}% / {100 * val:5.1f}%  '
                         f'({self.images_with["train"][name]})')
        return '\n'.join(lines)


def _imwrite(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), array, _PNG):
        raise OSError(f'{path}: cannot write')


def _write_split(root: Path, split: str, num: int, size: Tuple[int, int], seed: int) -> np.ndarray:
    """Write one split; returns (num, 256) pixel counts per trainId (index 255 = ignore) for the summary."""
    to_train, to_color = id_to_train_id_lut(), id_to_color_lut()
    counts = np.zeros((num, 256), np.int64)
    for i in range(num):
        rng = np.random.default_rng([seed, _SPLIT_CODE[split], i])
        img, label_ids = draw_scene(rng, *size)
        cities = CITIES[split]  # e.g. synthburg/synthburg_000003_000019
        city = cities[i % len(cities)]
        stem = f'{city}_{i // len(cities):06d}_{FRAME}'
        train_ids = to_train[label_ids]
        _imwrite(root / 'leftImg8bit' / split / city / f'{stem}_leftImg8bit.png', img[..., ::-1])
        gt = root / 'gtFine' / split / city
        _imwrite(gt / f'{stem}_gtFine_labelIds.png', label_ids)
        _imwrite(gt / f'{stem}_gtFine_labelTrainIds.png', train_ids)
        _imwrite(gt / f'{stem}_gtFine_color.png', to_color[label_ids][..., ::-1])
        counts[i] = np.bincount(train_ids.ravel(), minlength=256)
    return counts


def make_sample_dataset(out: Union[str, os.PathLike], num_train: int = 40, num_val: int = 10,
                        size: Tuple[int, int] = (512, 256), seed: int = 0) -> SampleSummary:
    """Generate the dataset under ``out`` (``size`` is (width, height)); replaces an earlier sample dataset there."""
    out = Path(out)
    if num_train < 1 or num_val < 1:
        raise ValueError(f'num_train={num_train}, num_val={num_val}: expected at least 1 image in each split')
    if size[0] < 64 or size[1] < 32:
        raise ValueError(f'size={size[0]}x{size[1]}: expected at least 64x32 (width x height)')
    if out.exists() and not out.is_dir():
        raise FileExistsError(f'{out}: exists and is not a folder; expected a new or empty folder, or an earlier '
                              f'sample dataset')
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(f'{out}: not empty and not a sample dataset (no {MARKER}); refusing to overwrite it, '
                              f'choose a new or empty folder')
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-', dir=out.parent))
    try:
        summary = SampleSummary(out, {'train': num_train, 'val': num_val})
        for split, num in summary.counts.items():
            counts = _write_split(tmp, split, num, size, seed)
            total = counts[:, :NUM_CLASSES].sum()
            summary.pixel_share[split] = {c: float(counts[:, t].sum() / total) for t, c in enumerate(CLASS_NAMES)}
            summary.images_with[split] = {c: int((counts[:, t] > 0).sum()) for t, c in enumerate(CLASS_NAMES)}
        meta = dict(generator='repseg.datasets.sample_scenes', seed=seed, size=list(size), counts=summary.counts,
                    pixel_share=summary.pixel_share)
        (tmp / MARKER).write_text(json.dumps(meta, indent=1) + '\n')
        # an earlier dataset is moved aside, the new one renamed into place, then the earlier one deleted
        aside = Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-', dir=out.parent)) if out.exists() else None
        if aside:
            os.replace(out, aside / out.name)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if aside:
        shutil.rmtree(aside, ignore_errors=True)
    return summary

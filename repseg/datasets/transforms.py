"""Pipeline transforms that turn the usual data mistakes into one-line errors naming the file.

With the stock transforms, labelIds instead of labelTrainIds train silently on wrong classes or fail deep in the
loss, and a corrupt image or label fails without naming the file.
"""
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms import LoadImageFromFile as _LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations as _LoadAnnotations
from mmseg.registry import TRANSFORMS

from repseg.utils.io import is_cut_short


def _check_complete(path: str, what: str) -> None:
    if osp.isfile(path) and is_cut_short(path):
        raise ValueError(f'{path}: truncated {what} (no end-of-image marker); expected a complete image file')


def _reraise_one_line(err: Exception, path: str, what: str) -> None:
    if isinstance(err, FileNotFoundError):
        raise FileNotFoundError(f'{path}: {what} file not found') from None
    detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
    raise ValueError(f'{path}: unreadable {what} ({type(err).__name__}: {detail}); expected a valid image file, '
                     f'is it truncated or corrupt?') from None


@TRANSFORMS.register_module()
class LoadImageFromFileChecked(_LoadImageFromFile):
    """``LoadImageFromFile`` with one-line errors, also for a cut-short image (else decoded in part, grey below)."""

    def transform(self, results: dict) -> Optional[dict]:
        _check_complete(results.get('img_path', ''), 'image')
        try:
            return super().transform(results)
        except Exception as err:  # noqa: BLE001  (re-raised as one line)
            _reraise_one_line(err, results.get('img_path', '<img_path>'), 'image')


@TRANSFORMS.register_module()
class LoadAnnotationsChecked(_LoadAnnotations):
    """MMSegmentation's ``LoadAnnotations`` with one-line errors naming a missing, corrupt or cut-short label map."""

    def transform(self, results: dict) -> Optional[dict]:
        _check_complete(results.get('seg_map_path', ''), 'label map')
        try:
            return super().transform(results)
        except Exception as err:  # noqa: BLE001  (re-raised as one line)
            _reraise_one_line(err, results.get('seg_map_path', '<seg_map_path>'), 'label map')


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Fail fast on label values outside 0..num_classes-1 and ``ignore_index``; put it right after LoadAnnotations
    (one ``bincount`` per sample, a few ms on a 2048x1024 map)."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        seg = results['gt_seg_map']
        path = results.get('seg_map_path', '<gt_seg_map>')
        if seg.ndim != 2:
            raise ValueError(f'{path}: label map of shape {tuple(seg.shape)}; expected one channel of trainIds '
                             f'(H, W) - did you point at _gtFine_color.png instead of _gtFine_labelTrainIds.png?')
        values = np.flatnonzero(np.bincount(seg.ravel(), minlength=256)) if seg.dtype == np.uint8 \
            else np.unique(seg)
        bad = [int(v) for v in values if not (0 <= v < self.num_classes or v == self.ignore_index)]
        if bad:
            shown = ', '.join(map(str, bad[:12])) + (', ...' if len(bad) > 12 else '')
            raise ValueError(f'{path}: label values [{shown}] outside 0-{self.num_classes - 1} and '
                             f'{self.ignore_index} (ignore); did you point at labelIds instead of labelTrainIds? '
                             f'run tools/prepare_cityscapes.py')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(num_classes={self.num_classes}, ignore_index={self.ignore_index})'

"""Pipeline transforms that turn the usual data mistakes into one-line errors naming the file.

Why: with the stock transforms, pointing a config at ``_gtFine_labelIds.png`` (ids 0-33) instead of
``_gtFine_labelTrainIds.png`` trains silently on wrong classes or fails deep in the loss with a CUDA/index error; a
corrupt label PNG fails with "cannot identify image file <_io.BytesIO ...>" (no file name) and a corrupt or empty
image with an assertion or a multi-line OpenCV error.
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
    """``LoadImageFromFile`` whose errors for a missing, empty, corrupt or cut-short image are one line naming the
    file (a cut-short JPEG or PNG would otherwise decode in part, grey below, with a decoder warning only)."""

    def transform(self, results: dict) -> Optional[dict]:
        _check_complete(results.get('img_path', ''), 'image')
        try:
            return super().transform(results)
        except Exception as err:  # noqa: BLE001  (re-raised as one line)
            _reraise_one_line(err, results.get('img_path', '<img_path>'), 'image')


@TRANSFORMS.register_module()
class LoadAnnotationsChecked(_LoadAnnotations):
    """MMSegmentation's ``LoadAnnotations`` whose errors for a missing, corrupt or cut-short label map name the
    file."""

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

"""CamVid in the 11-class version of the SegNet tutorial: ``DATA_ROOT/{train,val,test}/NAME.(png|jpg)`` with labels
``DATA_ROOT/{train,val,test}annot/NAME.png`` (values 0-10 for the classes, 11 unlabelled).

The label 11 becomes 255 (``label_map``) rather than ``ignore_index=11``: MMSegmentation treats 255 as "ignore" in
many places at once (losses, RandomCrop, the preprocessor's ``seg_pad_val``, IoUMetric).
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS, TRANSFORMS

from .transforms import LoadAnnotationsChecked

#: Class names in label order 0-10 and their colours (RGB) as in the SegNet tutorial's CamVid scripts.
CAMVID_CLASSES = ('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence', 'Car', 'Pedestrian',
                  'Bicyclist')
CAMVID_PALETTE = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222], [128, 128, 0],
                  [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192]]
UNLABELLED = 11
IGNORE_INDEX = 255
IMG_SUFFIXES = ('.png', '.jpg')
LAYOUT = 'DATA_ROOT/{train,val,test}/NAME.(png|jpg) with labels DATA_ROOT/{train,val,test}annot/NAME.png ' \
         '(see data/README.md)'


def camvid_pairs(img_dir: str, ann_dir: Optional[str], img_suffixes: Sequence[str] = IMG_SUFFIXES,
                 seg_map_suffix: str = '.png') -> List[Tuple[str, Optional[str]]]:
    """Sorted (image, label) paths of one split (``ann_dir=None``: images only), one-line errors for bad layouts."""
    for folder, what in ((img_dir, 'image'), (ann_dir, 'label')):
        if folder is not None and not osp.isdir(folder):
            raise FileNotFoundError(f'{folder}: missing {what} folder; expected the CamVid layout {LAYOUT}')
    images: Dict[str, str] = {}
    for name in sorted(os.listdir(img_dir)):
        stem, ext = osp.splitext(name)
        if ext.lower() not in img_suffixes or name.startswith('.'):
            continue
        if stem in images:
            raise ValueError(f'{osp.join(img_dir, name)}: a second image named {stem} (also {images[stem]}); '
                             f'expected one image per name')
        images[stem] = name
    if not images:
        raise FileNotFoundError(f'{img_dir}: no images ({", ".join("*" + s for s in img_suffixes)}); expected the '
                                f'CamVid layout {LAYOUT}')
    if ann_dir is None:
        return [(osp.join(img_dir, name), None) for name in images.values()]
    labels = {name[:-len(seg_map_suffix)] for name in os.listdir(ann_dir)
              if name.endswith(seg_map_suffix) and not name.startswith('.')}
    missing = [name for stem, name in images.items() if stem not in labels]
    if missing:
        raise FileNotFoundError(f'{osp.join(img_dir, missing[0])}: image without a label (no {missing[0]} -> '
                                f'{osp.join(ann_dir, osp.splitext(missing[0])[0] + seg_map_suffix)}; {len(missing)} '
                                f'such images); expected the CamVid layout {LAYOUT}')
    stray = sorted(labels - images.keys())
    if stray:
        raise FileNotFoundError(f'{osp.join(ann_dir, stray[0] + seg_map_suffix)}: label without an image in '
                                f'{img_dir} ({len(stray)} such labels); do the image and label folders belong to the '
                                f'same split?')
    return [(osp.join(img_dir, name), osp.join(ann_dir, stem + seg_map_suffix)) for stem, name in images.items()]


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid, 11 classes, SegNet layout, images PNG (as published) or JPEG; configured with
    ``data_root`` and ``data_prefix=dict(img_path='val', seg_map_path='valannot')``. Label 11 is mapped to 255."""
    METAINFO = dict(classes=CAMVID_CLASSES, palette=CAMVID_PALETTE)

    def __init__(self, img_suffix: Sequence[str] = IMG_SUFFIXES, seg_map_suffix: str = '.png', **kwargs) -> None:
        if kwargs.get('ann_file'):
            raise ValueError(f'CamVidDataset: ann_file={kwargs["ann_file"]!r} is not supported; the split is the '
                             f'folder named in data_prefix (layout {LAYOUT})')
        if kwargs.get('reduce_zero_label'):
            raise ValueError('CamVidDataset: reduce_zero_label=True would drop Sky (label 0); CamVid labels start at '
                             '0 and the unlabelled value 11 is already ignored')
        super().__init__(img_suffix=tuple(img_suffix), seg_map_suffix=seg_map_suffix, **kwargs)

    @classmethod
    def get_label_map(cls, new_classes: Optional[Sequence] = None) -> Dict[int, int]:
        """MMSegmentation's map for a subset of classes (if any), plus unlabelled (11) -> 255."""
        return {**(super().get_label_map(new_classes) or {}), UNLABELLED: IGNORE_INDEX}

    def load_data_list(self) -> List[dict]:
        ann_dir = self.data_prefix.get('seg_map_path')
        pairs = camvid_pairs(self.data_prefix.get('img_path', ''), ann_dir, self.img_suffix, self.seg_map_suffix)
        return [dict(img_path=img, label_map=self.label_map, reduce_zero_label=False, seg_fields=[],
                     **({} if seg is None else {'seg_map_path': seg})) for img, seg in pairs]


@TRANSFORMS.register_module()
class LoadCamVidAnnotations(LoadAnnotationsChecked):
    """``LoadAnnotationsChecked`` for raw CamVid labels: a one-line error naming the file for a colour (3-channel)
    map or a value outside 0-11, then the dataset's ``label_map`` (11 -> 255) as ``LoadAnnotations`` applies it."""

    def transform(self, results: dict) -> dict:
        label_map = results.pop('label_map', None)
        results = super().transform(results)
        seg = results['gt_seg_map']
        path = results.get('seg_map_path', '<seg_map_path>')
        if seg.ndim != 2:
            raise ValueError(f'{path}: label map of shape {tuple(seg.shape)}; expected one channel of CamVid class '
                             f'indices 0-11 (the SegNet *annot/ PNGs, not the colour labels)')
        if seg.max() > UNLABELLED:  # LoadAnnotations gives uint8
            bad = [int(v) for v in np.unique(seg) if v > UNLABELLED]
            shown = ', '.join(map(str, bad[:12])) + (', ...' if len(bad) > 12 else '')
            raise ValueError(f'{path}: label values [{shown}] outside 0-{UNLABELLED}; expected CamVid class indices '
                             f'0-10 and {UNLABELLED} (unlabelled)')
        if label_map:
            lut = np.arange(256, dtype=np.uint8)
            lut[list(label_map)] = list(label_map.values())
            results['gt_seg_map'] = lut[seg]
        results['label_map'] = label_map
        return results

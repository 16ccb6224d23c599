"""Colour masks and overlays of trainId maps."""
from typing import Optional, Sequence

import numpy as np
from mmseg.datasets import CityscapesDataset

#: The Cityscapes trainId palette (RGB), as MMSegmentation and cityscapesscripts use it.
CITYSCAPES_PALETTE = np.array(CityscapesDataset.METAINFO['palette'], dtype=np.uint8)


def colorize(label_map: np.ndarray, palette: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """HxWx3 **BGR** uint8 colour mask (BGR so that it goes straight to ``cv2.imwrite``); ids outside the palette
    (e.g. 255, ignore) are black."""
    pal = CITYSCAPES_PALETTE if palette is None else np.asarray(palette, dtype=np.uint8)
    lut = np.zeros((max(256, int(label_map.max(initial=0)) + 1), 3), np.uint8)
    lut[:len(pal)] = pal[:, ::-1]
    return lut[label_map]


def overlay(image: np.ndarray, label_map: np.ndarray, opacity: float = 0.5,
            palette: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """The BGR ``image`` blended with the colour mask of ``label_map`` (``opacity`` is the mask's weight)."""
    if image.shape[:2] != label_map.shape[:2]:
        raise ValueError(f'overlay: image {image.shape[:2]} and label map {label_map.shape[:2]} differ in size')
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f'overlay: opacity {opacity} outside [0, 1]')
    blend = (1 - opacity) * image.astype(np.float32) + opacity * colorize(label_map, palette).astype(np.float32)
    return np.clip(blend + 0.5, 0, 255).astype(np.uint8)

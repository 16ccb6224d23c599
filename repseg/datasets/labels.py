"""Cityscapes label tables taken from cityscapesscripts, so that our maps use exactly the official id <-> trainId
mapping (labelIds 0-33 in the files, trainIds 0-18 and 255 for training)."""
from typing import Dict, Tuple

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS
from cityscapesscripts.helpers.labels import name2label

NUM_CLASSES = 19
IGNORE_INDEX = 255

#: The 19 training classes in trainId order.
CLASS_NAMES: Tuple[str, ...] = tuple(
    next(lab.name for lab in _CS_LABELS if lab.trainId == t) for t in range(NUM_CLASSES))

#: Cityscapes label id (0-33) of each class name, e.g. LABEL_ID['road'] == 7, LABEL_ID['ego vehicle'] == 1.
LABEL_ID: Dict[str, int] = {name: lab.id for name, lab in name2label.items() if lab.id >= 0}


def id_to_train_id_lut() -> np.ndarray:
    """(256,) uint8 lookup table labelId -> trainId; every id that is not one of the 19 classes maps to 255."""
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for lab in _CS_LABELS:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < NUM_CLASSES:
            lut[lab.id] = lab.trainId
    return lut


def train_id_to_id_lut() -> np.ndarray:
    """(256,) uint8 lookup table trainId -> labelId, for predictions graded by the official evaluator (which reads
    labelIds); 255 (ignore) maps to 0, 'unlabeled'."""
    lut = np.zeros(256, np.uint8)
    for lab in _CS_LABELS:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < NUM_CLASSES:
            lut[lab.trainId] = lab.id
    return lut


def id_to_color_lut() -> np.ndarray:
    """(256, 3) uint8 lookup table labelId -> the official Cityscapes RGB colour (the ``_gtFine_color.png`` look)."""
    lut = np.zeros((256, 3), np.uint8)
    for lab in _CS_LABELS:
        if 0 <= lab.id < 256:
            lut[lab.id] = lab.color
    return lut

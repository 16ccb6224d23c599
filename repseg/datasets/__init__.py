"""Data side of RepSeg: the Cityscapes preparation, the procedural sample dataset and checking transforms.

Importing it registers ``CheckSegLabels``, ``LoadImageFromFileChecked`` and ``LoadAnnotationsChecked`` in
MMSegmentation's TRANSFORMS registry.
"""
from .cityscapes_prep import check_layout, prepare_cityscapes
from .labels import CLASS_NAMES, NUM_CLASSES, id_to_train_id_lut
from .sample_dataset import make_sample_dataset
from .sample_scenes import draw_scene
from .transforms import CheckSegLabels, LoadAnnotationsChecked, LoadImageFromFileChecked

__all__ = ['CLASS_NAMES', 'NUM_CLASSES', 'CheckSegLabels', 'LoadAnnotationsChecked', 'LoadImageFromFileChecked',
           'check_layout', 'draw_scene', 'id_to_train_id_lut', 'make_sample_dataset', 'prepare_cityscapes']

"""Data side of RepSeg: the Cityscapes preparation, the procedural sample dataset, CamVid and checking transforms.

Importing it registers ``CheckSegLabels``, ``LoadImageFromFileChecked``, ``LoadAnnotationsChecked`` and
``LoadCamVidAnnotations`` in MMSegmentation's TRANSFORMS registry and ``CamVidDataset`` in its DATASETS registry.
"""
from .camvid import CAMVID_CLASSES, CAMVID_PALETTE, CamVidDataset, LoadCamVidAnnotations, camvid_pairs
from .cityscapes_prep import check_layout, prepare_cityscapes
from .labels import CLASS_NAMES, NUM_CLASSES, id_to_train_id_lut
from .sample_dataset import make_sample_dataset
from .sample_scenes import draw_scene
from .transforms import CheckSegLabels, LoadAnnotationsChecked, LoadImageFromFileChecked

__all__ = ['CAMVID_CLASSES', 'CAMVID_PALETTE', 'CLASS_NAMES', 'NUM_CLASSES', 'CamVidDataset', 'CheckSegLabels',
           'LoadAnnotationsChecked', 'LoadCamVidAnnotations', 'LoadImageFromFileChecked', 'camvid_pairs',
           'check_layout', 'draw_scene', 'id_to_train_id_lut', 'make_sample_dataset', 'prepare_cityscapes']

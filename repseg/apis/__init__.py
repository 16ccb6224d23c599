"""Inference with trained (train-form or deploy-form) segmentors: a Python API and what tools/infer.py runs."""
from repseg.engine import check_state_dict, read_checkpoint
from .batch import collect_images, infer_to_dir
from .config import inference_pipeline, model_config, read_config, sync_bn_to_bn
from .inference import build_segmentor, inference, init_segmentor, load_image, segment
from .visualize import CITYSCAPES_PALETTE, colorize, overlay

__all__ = ['CITYSCAPES_PALETTE', 'build_segmentor', 'check_state_dict', 'collect_images', 'colorize', 'infer_to_dir',
           'inference', 'inference_pipeline', 'init_segmentor', 'load_image', 'model_config', 'overlay',
           'read_checkpoint', 'read_config', 'segment', 'sync_bn_to_bn']

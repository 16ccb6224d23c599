from .cityscapes_official import evaluate_official, official_gt_path, prediction_name
from .labelid_writer import CityscapesLabelIdWriter

__all__ = ['CityscapesLabelIdWriter', 'evaluate_official', 'official_gt_path', 'prediction_name']

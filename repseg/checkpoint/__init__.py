"""Import ImageNet-pretrained RepVGG weights (official RepVGG and RepVGGplus, mmpretrain, timm; train or deploy form)
into RepSeg."""
from .formats import FORMATS, detect_format, map_key, stage3_first_blocks, to_repseg_keys
from .fusion import fuse_state_dict
from .loading import (INIT_TYPE, ImportInfo, RepSegPretrainedInit, check_fits_backbone, convert_checkpoint,
                      display_name, expected_shapes, fitting_archs, load_backbone_checkpoint, load_pretrained_backbone,
                      unwrap_state_dict)

__all__ = ['FORMATS', 'INIT_TYPE', 'ImportInfo', 'RepSegPretrainedInit', 'check_fits_backbone', 'convert_checkpoint',
           'detect_format', 'display_name', 'expected_shapes', 'fitting_archs', 'fuse_state_dict',
           'load_backbone_checkpoint', 'load_pretrained_backbone', 'map_key', 'stage3_first_blocks', 'to_repseg_keys',
           'unwrap_state_dict']

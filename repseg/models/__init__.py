"""Models: the RepVGG and DualRepVGG backbones and their blocks, the re-parameterization, the custom L2, and what
reads models (forms, fused-kernel diagnostics, the logits wrapper, multiply-adds)."""
from .backbones import DualRepVGG, QARepVGGBlock, RepVGG, RepVGGBlock, is_reparameterizable, reparameterize
from .complexity import count_macs, layer_macs
from .custom_l2 import CustomL2OptimWrapperConstructor, custom_l2
from .forms import REPARAM_BACKBONES, config_form, state_dict_form
from .seg_logits import SegLogits

__all__ = ['CustomL2OptimWrapperConstructor', 'DualRepVGG', 'QARepVGGBlock', 'REPARAM_BACKBONES', 'RepVGG',
           'RepVGGBlock', 'SegLogits', 'config_form',
           'count_macs', 'custom_l2', 'layer_macs', 'is_reparameterizable', 'reparameterize', 'state_dict_form']

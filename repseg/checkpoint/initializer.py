"""An mmengine weight initializer that runs RepSeg's checkpoint loader inside ``BaseModule.init_weights``.

Running inside mmengine's init flow (rather than after it) keeps its per-parameter init record right: the
loaded parameters are reported as loaded from the file, not as "unchanged".
"""
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import nn

from ..models.backbones import PRETRAINED_INIT
from .loading import load_pretrained_backbone

INIT_TYPE = PRETRAINED_INIT


@WEIGHT_INITIALIZERS.register_module(name=INIT_TYPE)
class RepSegPretrainedInit:
    """``dict(type='RepSegPretrained', checkpoint=PATH)``: what RepVGG turns its ``Pretrained`` init_cfg into."""

    def __init__(self, checkpoint: str, **_ignored):  # map_location / prefix of 'Pretrained': not needed here
        self.checkpoint = checkpoint

    def __call__(self, module: nn.Module) -> None:
        info = load_pretrained_backbone(module, self.checkpoint)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f'loaded by RepSeg from {info.source} ({info.format} format)')

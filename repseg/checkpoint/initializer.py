"""An mmengine weight initializer that runs RepSeg's checkpoint loader inside ``BaseModule.init_weights``.

Running inside mmengine's init flow (rather than after it) keeps its per-parameter init record right: the
loaded parameters are reported as loaded from the file, not as "unchanged".
"""
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import nn

from .loading import load_pretrained_backbone

INIT_TYPE = 'RepSegPretrained'


@WEIGHT_INITIALIZERS.register_module(name=INIT_TYPE)
class RepSegPretrainedInit:
    """``dict(type='RepSegPretrained', checkpoint=PATH)``: what RepVGG turns its ``Pretrained`` init_cfg into."""

    def __init__(self, checkpoint: str, **_ignored):  # map_location / prefix of 'Pretrained': not needed here
        self.checkpoint = checkpoint

    def __call__(self, module: nn.Module) -> None:
        info = load_pretrained_backbone(module, self.checkpoint)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f'loaded by RepSeg from {info.source} ({info.format} format)')


def swap_pretrained_cfg(init_cfg) -> list:
    """The init_cfg list with every ``Pretrained`` entry replaced by one RepSegPretrained entry, applied last
    (as mmengine applies Pretrained last); [] when there is no Pretrained entry."""
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg] if init_cfg else []
    pretrained = [cfg for cfg in cfgs if cfg.get('type') == 'Pretrained']
    if not pretrained:
        return []
    return [cfg for cfg in cfgs if cfg.get('type') != 'Pretrained'] + [dict(pretrained[-1], type=INIT_TYPE)]

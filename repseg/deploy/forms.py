"""Which form a segmentor's RepVGG backbone is in, read from a config or a state dict."""
from typing import Any, Mapping

from mmengine.config import Config

BRANCH_KEYS = ('.rbr_dense.', '.rbr_1x1.', '.rbr_identity.')
REPARAM_KEY = '.rbr_reparam.'


def state_dict_form(state: Mapping[str, Any], path: Any) -> str:
    """'train' (multi-branch blocks) or 'deploy' (``rbr_reparam`` convs) for a segmentor state dict; a backbone
    with both kinds of blocks, or none, is refused."""
    keys = [k for k in state if k.startswith('backbone.')]
    if not keys:
        raise ValueError(f'{path}: no backbone.* weights; expected a segmentor (EncoderDecoder) checkpoint')
    branches = any(part in k for k in keys for part in BRANCH_KEYS)
    reparam = any(REPARAM_KEY in k for k in keys)
    if branches and reparam:
        raise ValueError(f'{path}: backbone holds both multi-branch and rbr_reparam blocks; a partial conversion?')
    if not branches and not reparam:
        raise ValueError(f'{path}: backbone has no RepVGG blocks (no rbr_dense/rbr_reparam keys)')
    return 'deploy' if reparam else 'train'


def config_form(cfg: Config) -> str:
    """'train' or 'deploy' for a config whose backbone must be RepVGG."""
    backbone = cfg.get('model', {}).get('backbone') or {}
    if backbone.get('type') != 'RepVGG':
        raise ValueError(f'{cfg.filename}: model.backbone.type is {backbone.get("type")!r}; only RepVGG backbones '
                         f'have a deploy form')
    return 'deploy' if backbone.get('deploy', False) else 'train'

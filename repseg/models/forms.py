"""Which form a RepVGG model is in, read from a state dict's keys or a config: 'train' (multi-branch blocks) or
'deploy' (one ``rbr_reparam`` conv per block). One implementation for the importer, the converter and the loaders."""
from typing import Any, Iterable, Mapping

from ..utils.io import CheckpointError

BRANCH_KEYS = ('.rbr_dense.', '.rbr_1x1.', '.rbr_identity.')
REPARAM_KEY = '.rbr_reparam.'
#: The backbones built of re-parameterizable blocks, with a train and a deploy form (``deploy=True``).
REPARAM_BACKBONES = ('RepVGG', 'DualRepVGG')


def state_dict_form(keys: Iterable[str], source: Any, prefix: str = '') -> str:
    """'train' or 'deploy' for the keys under ``prefix`` (e.g. 'backbone.' for a segmentor, '' for a backbone);
    keys with both kinds of blocks, or none, are refused in one line naming ``source``."""
    keys = [k for k in keys if k.startswith(prefix)]
    if prefix and not keys:
        raise CheckpointError(f'{source}: no {prefix}* weights; expected a segmentor (EncoderDecoder) checkpoint')
    branches = any(part in k for k in keys for part in BRANCH_KEYS)
    reparam = any(REPARAM_KEY in k for k in keys)
    if branches and reparam:
        raise CheckpointError(f'{source}: mixes train-time (rbr_dense/rbr_1x1) and deploy-time (rbr_reparam) '
                              f'blocks; a partial conversion?')
    if not branches and not reparam:
        raise CheckpointError(f'{source}: holds no RepVGG block weights (no rbr_dense/rbr_reparam keys)')
    return 'deploy' if reparam else 'train'


def config_form(cfg: Mapping[str, Any]) -> str:
    """'train' or 'deploy' for a config whose backbone must be one of ``REPARAM_BACKBONES``."""
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    if backbone.get('type') not in REPARAM_BACKBONES:
        raise ValueError(f'{getattr(cfg, "filename", "config")}: model.backbone.type is {backbone.get("type")!r}; '
                         f'only {" and ".join(REPARAM_BACKBONES)} backbones have a deploy form')
    return 'deploy' if backbone.get('deploy', False) else 'train'

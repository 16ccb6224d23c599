"""Configs as the inference and deploy code builds them: SyncBN as BN, and a test pipeline that needs no labels."""
import copy
from typing import Any, List

from mmengine.config import Config

from repseg.engine.config_file import ConfigLike, read_config

#: Norm layer types that need a process group in training; on one machine they are built as plain BN.
SYNC_NORM_TYPES = frozenset({'SyncBN', 'MMSyncBN'})

#: Test-pipeline transforms that read or check ground truth, which inference does not have.
LABEL_TRANSFORMS = frozenset({'LoadAnnotations', 'LoadAnnotationsChecked', 'LoadCamVidAnnotations', 'CheckSegLabels'})


def sync_bn_to_bn(node: Any) -> Any:
    """Rewrite every ``type='SyncBN'`` norm config under ``node`` to ``'BN'`` in place; returns ``node``. Same
    parameters and buffers, no ``torch.distributed`` needed: the swap mmengine's Runner makes when not distributed
    (``revert_sync_batchnorm``), so ``tools/test.py`` sees the same model."""
    if isinstance(node, dict) and node.get('type') in SYNC_NORM_TYPES:
        node['type'] = 'BN'
    for value in node.values() if isinstance(node, dict) else node if isinstance(node, list) else ():
        sync_bn_to_bn(value)
    return node


def model_config(config: ConfigLike) -> Config:
    """The config with its model built for one machine: SyncBN as BN, no pretrained init (weights come from a
    checkpoint), no train_cfg."""
    cfg = read_config(config)
    if 'model' not in cfg:
        raise KeyError(f'{cfg.filename}: has no `model`; expected a segmentor config')
    sync_bn_to_bn(cfg.model)
    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    if isinstance(cfg.model.get('backbone'), dict):
        cfg.model.backbone.init_cfg = None
    return cfg


def inference_pipeline(cfg: Config) -> List[dict]:
    """The test pipeline fed from an in-memory BGR array, without the transforms that need labels."""
    pipeline = cfg.get('test_pipeline') or cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')
    if not pipeline:
        raise KeyError(f'{cfg.filename}: has neither test_pipeline nor test_dataloader.dataset.pipeline')
    steps = [copy.deepcopy(dict(t)) for t in pipeline if dict(t).get('type') not in LABEL_TRANSFORMS]
    if not steps or not str(steps[0].get('type', '')).startswith('LoadImageFrom'):
        raise ValueError(f'{cfg.filename}: test pipeline must start with an image loader, got {steps[:1]}')
    steps[0] = dict(type='LoadImageFromNDArray')
    return steps

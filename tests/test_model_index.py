"""model-index.yml and its metafiles (MMSegmentation's format) list every config, and every listed config builds."""
import copy
import sys

import pytest
import torch
import yaml
from conftest import REPO
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

import repseg  # noqa: F401  (registers RepSeg's modules)
from repseg.engine.checkpoints import BUILT_FROM_CHECKPOINTS

MODEL_KEYS = {'Name', 'In Collection', 'Results', 'Config', 'Metadata'}
METADATA_KEYS = {'Training Data', 'Batch Size', 'Architecture'}
COLLECTION_KEYS = {'Name', 'License', 'Metadata', 'Paper', 'README', 'Frameworks'}


def metafiles() -> list:
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    assert set(index) == {'Import'} and index['Import'], 'model-index.yml: an Import list of metafiles'
    return index['Import']


def models() -> list:
    return [model for path in metafiles() for model in yaml.safe_load((REPO / path).read_text())['Models']]


def listed_configs() -> list:
    return [model['Config'] for model in models()]


def config_files() -> list:
    """Every config a user runs: each .py under configs/ outside _base_ folders."""
    return sorted(p.relative_to(REPO).as_posix() for p in (REPO / 'configs').rglob('*.py')
                  if '_base_' not in p.relative_to(REPO / 'configs').parts)


def test_metafiles_follow_the_format():
    names = []
    for path in metafiles():
        assert (REPO / path).is_file(), f'model-index.yml imports {path}, which does not exist'
        meta = yaml.safe_load((REPO / path).read_text())
        assert set(meta) == {'Collections', 'Models'}, path
        collections = {c['Name']: c for c in meta['Collections']}
        for name, collection in collections.items():
            assert COLLECTION_KEYS <= set(collection), (path, name, COLLECTION_KEYS - set(collection))
            assert (REPO / collection['README']).is_file(), (path, name, collection['README'])
            assert {'Title', 'URL'} <= set(collection['Paper'])
        for model in meta['Models']:
            assert MODEL_KEYS <= set(model), (path, model.get('Name'), MODEL_KEYS - set(model))
            assert model['In Collection'] in collections, (path, model['Name'])
            assert METADATA_KEYS <= set(model['Metadata']), (path, model['Name'])
            assert model['Metadata']['Training Data'] == model['Results']['Dataset'], model['Name']
            results = model['Results']
            assert {'Task', 'Dataset', 'Metrics'} <= set(results) and isinstance(results['Metrics'], dict)
            assert results['Task'] == 'Semantic Segmentation'
            assert all(isinstance(v, (int, float)) for v in results['Metrics'].values()), model['Name']
            assert not model.get('Weights'), f'{model["Name"]}: no weights are published'
            assert model['Name'] == model['Config'].rsplit('/', 1)[1][:-3], model['Name']
            names.append(model['Name'])
    assert len(names) == len(set(names)), 'model names must be unique'


def test_every_config_is_listed_once():
    listed = listed_configs()
    assert len(listed) == len(set(listed)), 'a config listed twice'
    missing = sorted(set(config_files()) - set(listed))
    assert not missing, f'configs missing from the metafiles (model-index.yml): {missing}'
    assert set(listed) <= set(config_files()), sorted(set(listed) - set(config_files()))


def test_the_check_sees_a_new_config(tmp_path, monkeypatch):
    """A config added under configs/ (or a new subfolder) and not listed is caught; _base_ files are not configs."""
    for rel in ('configs/pspnet_new.py', 'configs/camvid/pspnet_new_camvid.py', 'configs/ade/pspnet_new_ade.py',
                'configs/_base_/models/new.py', 'configs/camvid/_base_/new.py'):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text('')
    monkeypatch.setattr(sys.modules[__name__], 'REPO', tmp_path)
    assert config_files() == ['configs/ade/pspnet_new_ade.py', 'configs/camvid/pspnet_new_camvid.py',
                              'configs/pspnet_new.py']


@pytest.mark.parametrize('config', listed_configs())
def test_listed_config_builds(config):
    """Each listed config parses and its model builds, on the meta device (shapes only: full-size B2 and L2pse in
    well under a second). A QAT config builds from a trained checkpoint: its float config is built instead."""
    path = REPO / config
    assert path.is_file(), f'{config} is listed but does not exist'
    cfg = Config.fromfile(str(path))
    model_cfg = cfg.model
    if model_cfg.get('type') in BUILT_FROM_CHECKPOINTS:
        float_cfg = Config.fromfile(model_cfg['float_config'])
        assert float_cfg.model.get('type') not in BUILT_FROM_CHECKPOINTS
        model_cfg = float_cfg.model
    with torch.device('meta'), DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'mmseg'):
        model = MODELS.build(copy.deepcopy(model_cfg))
    assert sum(p.numel() for p in model.parameters()) > 0
    assert all(p.is_meta for p in model.parameters())

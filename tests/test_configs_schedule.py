"""Every PSPNet config builds and runs; the schedule is the paper's poly recipe (the real-time configs follow
MMSegmentation's DDRNet recipe: tests/test_dual_repvgg.py, tests/test_model_index.py)."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS, PARAM_SCHEDULERS

CONFIGS = sorted(glob.glob(str(REPO / 'configs' / 'pspnet_*.py')) +
                 glob.glob(str(REPO / 'configs' / 'baselines' / '*.py')))
CITYSCAPES_CONFIGS = [c for c in CONFIGS if not c.endswith('_sample.py')]


def test_expected_configs_exist():
    names = {osp.relpath(c, REPO / 'configs') for c in CONFIGS}
    assert {'pspnet_repvgg_b2.py', 'pspnet_repvgg_b2_fast.py', 'pspnet_repvgg_b1g2.py', 'pspnet_repvgg_b1g2_fast.py',
            'pspnet_repvgg_a0.py', 'pspnet_repvgg_a0_sample.py', 'baselines/pspnet_r50-d8_cityscapes_713x713.py',
            'baselines/pspnet_r101-d8_cityscapes_713x713.py'} <= names


@pytest.mark.parametrize('config', CONFIGS, ids=lambda c: osp.basename(c))
def test_config_builds_and_runs(config):
    cfg = Config.fromfile(config)
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()  # SyncBN needs a process group to run
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 97, 129), mode='tensor')
    assert logits.shape == (1, 19, 13, 17)  # output stride 8
    assert torch.isfinite(logits).all()
    if 'repvgg' in osp.basename(config):
        backbone = cfg.model.backbone
        assert backbone.strides == (2, 2, 2, 1, 1) and backbone.dilations == (1, 1, 1, 2, 4)
        assert backbone.out_indices == (3, 4) and cfg.model.pretrained is None
        assert model.decode_head.in_channels == model.backbone.channels[4]
        assert model.auxiliary_head.in_channels == model.backbone.channels[3]
        assert model.backbone.arch.lower() in osp.basename(config) and backbone.fast == ('fast' in config)


@pytest.mark.parametrize('config', CITYSCAPES_CONFIGS, ids=lambda c: osp.basename(c))
def test_cityscapes_recipe(config):
    cfg = Config.fromfile(config)
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
    assert cfg.train_cfg.max_iters == 7440 and abs(7440 * 16 / 2975 - 40) < 0.02  # 40 epochs at batch 16
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.model.test_cfg == dict(mode='slide', crop_size=(713, 713), stride=(476, 476))
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop'][0]
    assert crop.crop_size == (713, 713)
    resize = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomResize'][0]
    assert resize.ratio_range == (0.5, 2.0)
    assert cfg.model.decode_head.align_corners and cfg.model.auxiliary_head.align_corners
    assert cfg.model.decode_head.pool_scales == (1, 2, 3, 6) and cfg.model.decode_head.dropout_ratio == 0.1
    assert cfg.model.auxiliary_head.loss_decode.loss_weight == 0.4 and cfg.model.auxiliary_head.channels == 256


def test_poly_schedule_follows_the_paper():
    cfg = Config.fromfile(str(REPO / 'configs' / 'pspnet_repvgg_b2.py'))
    optim_wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
    scheduler = PARAM_SCHEDULERS.build(dict(cfg.param_scheduler[0], optimizer=optim_wrapper))
    total = cfg.train_cfg.max_iters
    lrs = []
    for _ in range(total):
        lrs.append(optim_wrapper.get_lr()['lr'][0])
        scheduler.step()
    assert lrs[0] == pytest.approx(0.01, rel=1e-12)
    for t in (1, 100, 3720, 7000, total - 1):
        assert lrs[t] == pytest.approx(0.01 * (1 - t / total) ** 0.9, rel=1e-6, abs=1e-12), t
    assert all(a > b for a, b in zip(lrs, lrs[1:]))

"""tools/train.py and tools/test.py end to end on the real Cityscapes frame, official mIoU agreement, resume."""
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, run_tool_in_process
from mmseg.datasets import CityscapesDataset
from mmseg.evaluation import IoUMetric

from repseg.datasets.labels import id_to_train_id_lut
from repseg.engine import allow_runner_checkpoints
from repseg.evaluation import CityscapesLabelIdWriter

FRAME = 'frankfurt_000000_000294'


def sample_paths(shared_data):
    root = shared_data / 'cityscapes_sample'
    return (root / 'leftImg8bit' / 'val' / 'frankfurt' / f'{FRAME}_leftImg8bit.png',
            root / 'gtFine' / 'val' / 'frankfurt' / f'{FRAME}_gtFine_labelIds.png',
            root / 'gtFine' / 'val' / 'frankfurt' / f'{FRAME}_gtFine_labelTrainIds.png')


def fixed_prediction(gt_train: np.ndarray) -> np.ndarray:
    """A deterministic, imperfect prediction: shifted, with a wrong block and noise, covering several classes."""
    pred = np.where(gt_train == 255, 0, gt_train).astype(np.uint8)
    pred = np.roll(pred, 3, axis=1)
    pred[40:70, 100:160] = 13  # car
    rng = np.random.default_rng(0)
    noise = rng.random(pred.shape) < 0.05
    pred[noise] = rng.integers(0, 19, noise.sum())
    return pred


def test_iou_metric_agrees_with_official_cityscapes_evaluation(shared_data, tmp_path):
    img, gt_label_ids, gt_train_ids_file = sample_paths(shared_data)
    label_ids = cv2.imread(str(gt_label_ids), cv2.IMREAD_UNCHANGED)
    # the official evaluator grades against labelIds: give IoUMetric the same ground truth, mapped to trainIds
    # (the stored trainIds file was downscaled separately and differs on border pixels, see NOTICE.md)
    gt_train = id_to_train_id_lut()[label_ids]
    pred = fixed_prediction(gt_train)
    sample = dict(img_path=str(img), seg_map_path=str(gt_train_ids_file),
                  pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
                  gt_sem_seg=dict(data=torch.from_numpy(gt_train.astype(np.int64))[None]))
    iou = IoUMetric(iou_metrics=['mIoU'])
    iou.dataset_meta = CityscapesDataset.METAINFO
    iou.process({}, [sample])
    ours = iou.compute_metrics(iou.results)['mIoU']

    writer = CityscapesLabelIdWriter(out_dir=str(tmp_path / 'pred'), official=True)
    writer.process({}, [sample])
    written = tmp_path / 'pred' / f'{FRAME}_pred_labelIds.png'
    assert written.is_file()
    stored = cv2.imread(str(written), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(stored)) <= {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}
    assert np.array_equal(id_to_train_id_lut()[stored], pred)  # labelIds round-trip to the trainIds
    official = writer.compute_metrics(writer.results)['official_mIoU']
    assert 10 < ours < 95  # a real, imperfect score, so agreement is not trivial
    assert official == pytest.approx(ours, abs=0.01)


def write_test_config(tmp_path, shared_data, extra: str = '') -> str:
    root = shared_data / 'cityscapes_sample'
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(textwrap.dedent(f"""
        _base_ = ['{REPO}/configs/pspnet_repvgg_a0_sample.py']
        data_root = '{root}/'
        crop_size = (64, 128)
        train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                          dict(type='RandomCrop', crop_size=crop_size), dict(type='PackSegInputs')]
        test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
        train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                                dataset=dict(data_root=data_root, pipeline=train_pipeline,
                                             data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')))
        val_dataloader = dict(num_workers=0, persistent_workers=False,
                              dataset=dict(data_root=data_root, pipeline=test_pipeline))
        test_dataloader = val_dataloader
        model = dict(data_preprocessor=dict(size=crop_size))
        train_cfg = dict(max_iters=6, val_interval=100)
        param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=7, by_epoch=False)]
        default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=5), logger=dict(interval=1))
    """) + textwrap.dedent(extra))
    return str(cfg)


def run_tool(tool, *args, cwd, env=None):
    return subprocess.run([sys.executable, str(REPO / 'tools' / tool), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def run_tool_here(tool, *args, cwd, syspath=()):
    """The tool's script in this process (conftest.run_tool_in_process): the same code path without the seconds of
    interpreter start and imports. The crashing run stays a real process; tools/test.py and tools/train.py are
    started as processes by test_distributed and test_deploy too."""
    return run_tool_in_process(tool, *args, cwd=cwd, syspath=syspath)


def test_interrupted_training_resumes_from_its_saved_iteration(shared_data, tmp_path):
    (tmp_path / 'crash_hook.py').write_text(textwrap.dedent("""
        import os
        from mmengine.hooks import Hook
        from mmseg.registry import HOOKS

        @HOOKS.register_module()
        class CrashAt(Hook):
            '''Kills the process after iteration `at`, as a lost node or a power cut would.'''
            def __init__(self, at):
                self.at = at

            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                if runner.iter + 1 == self.at:
                    os._exit(9)
    """))
    cfg = write_test_config(tmp_path, shared_data, """
        custom_imports = dict(imports=['repseg', 'crash_hook'], allow_failed_imports=False)
        custom_hooks = [dict(type='CrashAt', at=3, priority='VERY_HIGH')]
    """)
    # a real process, killed by os._exit; this checkout's repseg first on the path, then the hook's folder
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get('PYTHONPATH')])))
    first = run_tool('train.py', cfg, '--work-dir', 'wd', cwd=tmp_path, env=env)
    assert first.returncode == 9, first.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / 'wd').glob('*.pth')) == ['iter_2.pth']

    # a new run into the same work dir must not overwrite the earlier run's checkpoints
    again = run_tool_here('train.py', cfg, '--work-dir', 'wd', cwd=tmp_path, syspath=(tmp_path,))
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith('error: wd: holds checkpoints of an earlier run')

    resumed = run_tool_here('train.py', cfg, '--work-dir', 'wd', '--resume', '--cfg-options', 'custom_hooks=[]',
                            cwd=tmp_path, syspath=(tmp_path,))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [3/6]' in log and 'Iter(train) [1/6]' not in log
    with allow_runner_checkpoints():
        final = torch.load(tmp_path / 'wd' / 'iter_6.pth', weights_only=True)
    assert final['meta']['iter'] == 6
    # outside the allow-list the same file stays refused by weights_only
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(tmp_path / 'wd' / 'iter_6.pth', weights_only=True)

    tested = run_tool_here('test.py', cfg, 'wd/iter_6.pth', '--work-dir', 'wdt', '--out-dir', 'pred',
                           '--cityscapes-official', '--show-dir', 'vis', cwd=tmp_path, syspath=(tmp_path,))
    assert tested.returncode == 0, tested.stderr[-3000:]
    log = tested.stdout + tested.stderr
    assert 'mIoU' in log and 'mAcc' in log and 'aAcc' in log and 'per class results' in log
    assert 'cityscapes/official_mIoU' in log
    assert (tmp_path / 'pred' / f'{FRAME}_pred_labelIds.png').is_file()
    assert list((tmp_path / 'vis').rglob(f'*{FRAME}*.png'))


@pytest.mark.parametrize('args, message', [
    (['--cfg-options', 'model.backbone.archh=B2'],
     "error: --cfg-options model.backbone.archh: {cfg} has no key 'archh' under model.backbone"),
    (['--cfg-options', 'train_dataloader.dataset.data_root=/nonexistent/'],
     'error: /nonexistent/leftImg8bit/val: missing (train_dataloader.dataset.data_prefix.img_path)'),
    (['--cfg-options', 'model.backbone.arch=B9'], "unknown RepVGG arch 'B9'"),
])
def test_train_bad_input_gives_one_line_error(shared_data, tmp_path, args, message):
    cfg = write_test_config(tmp_path, shared_data)
    result = run_tool_here('train.py', cfg, '--work-dir', 'wd', *args, cwd=tmp_path)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert message.format(cfg=cfg) in result.stderr.strip().splitlines()[-1]


def test_test_tool_missing_checkpoint(shared_data, tmp_path):
    cfg = write_test_config(tmp_path, shared_data)
    result = run_tool_here('test.py', cfg, 'nope.pth', cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == 'error: nope.pth: no such checkpoint file'


def test_sample_config_trains_with_a_finite_falling_loss(tmp_path):
    """The demo's config, on generated sample scenes, in-process on mmengine's Runner: the loss must fall."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from repseg.datasets import make_sample_dataset
    from repseg.engine import load_config

    data = tmp_path / 'sample'
    make_sample_dataset(data, num_train=4, num_val=1, size=(256, 128), seed=0)
    cfg = load_config(str(REPO / 'configs' / 'pspnet_repvgg_a0_sample.py'), work_dir=str(tmp_path / 'wd'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(data)
        cfg[loader].num_workers, cfg[loader].persistent_workers = 0, False
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset.pipeline[3].scale = (256, 128)  # RandomResize around the generated size
    cfg.model.data_preprocessor.size = (128, 128)
    cfg.train_dataloader.dataset.pipeline[4].crop_size = (128, 128)
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 16
    cfg.param_scheduler[0].end = 17
    cfg.default_hooks.checkpoint.interval = 1000
    losses = []

    class RecordLoss(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            losses.append(float(outputs['loss']))

    runner = Runner.from_cfg(cfg)
    runner.register_hook(RecordLoss())
    runner.train()
    assert len(losses) == 16 and all(np.isfinite(losses))
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert last < 0.8 * first, losses

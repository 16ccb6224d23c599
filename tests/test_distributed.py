"""Multi-process training and testing on the CPU (gloo), started as a user starts them:
``torchrun --nproc_per_node 2 tools/train.py CONFIG --launcher pytorch`` (here ``python -m torch.distributed.run``).

One set of runs, shared by the tests, on a tiny PSPNet-RepVGG (one block per stage, width 0.25, SyncBN) over generated
sample scenes of 64x64 without random augmentation or dropout: a 2-process training that a hook kills after
iteration 2 (checkpoint of iteration 1 written), its ``--resume`` to iteration 3, and a 2-process ``tools/test.py``.
The single-process references run in this process through the same library calls the tools make.
"""
import hashlib
import os
import re
import resource
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmseg.registry import MODELS

from repseg.apis import sync_bn_to_bn
from repseg.datasets import make_sample_dataset
from repseg.engine import allow_runner_checkpoints, cli, init_cpu_distributed, load_config, slurm_env, train
from repseg.engine.distributed import DIST_ENV
from repseg.engine.launch import test as run_test

TINY_CONFIG = """
    _base_ = ['{repo}/configs/pspnet_repvgg_a0_sample.py']
    data_root = '{data}/'
    crop_size = (64, 64)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
    train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                            dataset=dict(data_root=data_root, pipeline=pipeline))
    test_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                           dataset=dict(data_root=data_root, pipeline=pipeline))
    val_dataloader = val_cfg = val_evaluator = None
    model = dict(data_preprocessor=dict(size=crop_size),
                 backbone=dict(arch=dict(_delete_=True, num_blocks=(1, 1, 1, 1), width_factor=(0.25,) * 4)),
                 decode_head=dict(in_channels=128, channels=16, dropout_ratio=0.0),
                 auxiliary_head=dict(in_channels=64, channels=8, dropout_ratio=0.0))
    optim_wrapper = dict(optimizer=dict(lr=0.1, momentum=0.0, weight_decay=0.0))
    param_scheduler = []
    train_cfg = dict(max_iters=3, val_interval=1000)
    default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=5), logger=dict(interval=1))
"""

# what the 2-process training adds: the probe (below) and a hook that kills both processes after iteration 2
PROBE_CONFIG = """
    _base_ = ['./tiny.py']
    custom_imports = dict(imports=['repseg', 'probe'], allow_failed_imports=False)
    custom_hooks = [dict(type='CrashAt', at=2, priority='VERY_HIGH')]
"""

PROBE = '''
    """Records which process writes which file through mmengine's file backend; kills a run at an iteration."""
    import os

    from mmengine.fileio.backends import LocalBackend
    from mmengine.hooks import Hook
    from mmseg.registry import HOOKS

    _put = LocalBackend.put


    def _recording_put(self, obj, filepath):
        with open(f'writes_rank{os.environ["RANK"]}.txt', 'a') as record:
            record.write(os.path.basename(str(filepath)) + '\\n')
        return _put(self, obj, filepath)


    LocalBackend.put = _recording_put


    @HOOKS.register_module()
    class CrashAt(Hook):
        """Kills the process after iteration `at`, as a lost node would."""
        def __init__(self, at):
            self.at = at

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter + 1 == self.at:
                os._exit(9)
'''

METRIC_LINE = re.compile(r'Iter\(test\).*aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+mAcc: ([\d.]+)')


def torchrun(root: Path, tool: str, *args, file_size_limit: Optional[int] = None) -> subprocess.CompletedProcess:
    """``tools/<tool> ARGS --launcher pytorch`` in 2 processes, as a user runs it (a free port: --standalone);
    ``file_size_limit``: RLIMIT_FSIZE in bytes for torchrun and its processes (a write crossing it gets EFBIG)."""
    path = os.pathsep.join(filter(None, [str(root), os.environ.get('PYTHONPATH')]))
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONDONTWRITEBYTECODE='1',
               CUDA_VISIBLE_DEVICES='', PYTHONPATH=path)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           str(REPO / 'tools' / tool), *map(str, args), '--launcher', 'pytorch'],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=None if file_size_limit is None else limit)


def srun(root: Path, tool: str, *args) -> List[subprocess.CompletedProcess]:
    """``srun -n 2 python tools/<tool> ARGS --launcher slurm`` on one node: two processes with srun's variables only
    (SLURM_PROCID, no RANK) and a stand-in ``scontrol`` on PATH that names this host."""
    bin_dir = root / 'fake_slurm_bin'
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / 'scontrol').write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && echo 127.0.0.1\n')
    (bin_dir / 'scontrol').chmod(0o755)
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
    procs, path = [], os.pathsep.join(filter(None, [str(root), os.environ.get('PYTHONPATH')]))
    for rank in range(2):
        env = dict(base, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NTASKS='2', SLURM_NODELIST='node01',
                   MASTER_PORT=str(port), PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', OMP_NUM_THREADS='1',
                   CUDA_VISIBLE_DEVICES='', PYTHONPATH=path)
        procs.append(subprocess.Popen([sys.executable, str(REPO / 'tools' / tool), *map(str, args), '--launcher',
                                       'slurm'], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outs = [proc.communicate(timeout=300) for proc in procs]
    return [subprocess.CompletedProcess(proc.args, proc.returncode, out, err) for proc, (out, err) in zip(procs, outs)]


def state_dict(path: Path) -> dict:
    with allow_runner_checkpoints():
        return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


@pytest.fixture(scope='module')
def tiny(tmp_path_factory) -> Path:
    """Data, configs, the probe and the initial weights (loaded by every training run)."""
    root = tmp_path_factory.mktemp('dist')
    make_sample_dataset(root / 'data', num_train=4, num_val=3, size=(64, 64), seed=0)
    (root / 'tiny.py').write_text(textwrap.dedent(TINY_CONFIG.format(repo=REPO, data=root / 'data')))
    (root / 'tiny_probe.py').write_text(textwrap.dedent(PROBE_CONFIG))
    (root / 'probe.py').write_text(textwrap.dedent(PROBE))
    torch.manual_seed(0)
    model = MODELS.build(sync_bn_to_bn(Config.fromfile(str(root / 'tiny.py')).model.to_dict()))
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict()), root / 'init.pth')
    return root


@pytest.fixture(scope='module')
def dist_train(tiny) -> SimpleNamespace:
    """The interrupted 2-process training and its resumption."""
    crashed = torchrun(tiny, 'train.py', 'tiny_probe.py', '--work-dir', 'wd', '--cfg-options',
                       f'load_from={tiny / "init.pth"}')
    after_crash = sorted(p.name for p in (tiny / 'wd').glob('*.pth'))
    resumed = torchrun(tiny, 'train.py', 'tiny_probe.py', '--work-dir', 'wd', '--resume',
                       '--cfg-options', 'custom_hooks=[]')
    return SimpleNamespace(crashed=crashed, after_crash=after_crash, resumed=resumed, wd=tiny / 'wd')


def test_two_processes_of_two_images_train_as_one_process_of_four(tiny, dist_train, tmp_path):
    """SyncBN statistics over both processes' images and DDP's averaged gradients: one iteration of 2 processes x 2
    images gives the weights (and BN running statistics) of one process x the same 4 images."""
    assert dist_train.after_crash == ['iter_1.pth'], dist_train.crashed.stderr[-3000:]
    # the saved config names the backend that ran (MMSegmentation's default_runtime says nccl)
    saved = Config.fromfile(str(dist_train.wd / 'tiny_probe.py'), import_custom_modules=False)
    assert saved.env_cfg.dist_cfg.backend == 'gloo'
    cfg = load_config(str(tiny / 'tiny.py'), {'train_dataloader.batch_size': 4, 'train_cfg.max_iters': 1,
                                              'load_from': str(tiny / 'init.pth')}, work_dir=str(tmp_path / 'one'))
    train(cfg)
    paths = (tiny / 'init.pth', tmp_path / 'one' / 'iter_1.pth', dist_train.wd / 'iter_1.pth')
    init, one, two = (state_dict(p) for p in paths)
    assert set(one) == set(two) == set(init)
    worst_step = 0.0
    for key, ref in one.items():
        if not ref.is_floating_point():  # num_batches_tracked
            assert torch.equal(two[key], ref), key
            continue
        diff = (two[key] - ref).abs().max().item()
        step = (ref - init[key]).abs().max().item()
        assert diff <= 1e-5 * ref.abs().max().item(), (key, diff)
        # the step itself agrees to 1% (measured: 2e-4 at worst); BN statistics of 2 images instead of 4 miss it by
        # 44% (median over tensors), summed instead of averaged gradients by 100%
        assert diff <= 1e-2 * step, (key, diff, step)
        worst_step = max(worst_step, step / ref.abs().max().item())
    assert worst_step > 1e-3  # the iteration moved the weights well beyond the tolerance


def test_checkpoints_and_logs_are_written_by_one_process(tiny, dist_train):
    assert dist_train.resumed.returncode == 0, dist_train.resumed.stderr[-3000:]
    # every checkpoint write of both runs (crashed, resumed), recorded per process by the probe: each to a temporary
    # file, renamed when complete (AtomicCheckpointHook)
    assert (tiny / 'writes_rank0.txt').read_text().split() == ['.iter_1.pth.tmp', '.iter_2.pth.tmp', '.iter_3.pth.tmp']
    assert sorted(p.name for p in dist_train.wd.glob('*.pth')) == ['iter_1.pth', 'iter_2.pth', 'iter_3.pth']
    assert not (tiny / 'writes_rank1.txt').exists()
    logs = sorted(p.name for p in dist_train.wd.rglob('*.log'))
    assert len(logs) == 2 and not any('rank' in name for name in logs), logs  # one per run


def test_resume_of_a_two_process_run_continues_to_the_planned_iteration(dist_train):
    assert dist_train.resumed.returncode == 0, dist_train.resumed.stderr[-3000:]
    log = dist_train.resumed.stdout + dist_train.resumed.stderr
    assert 'resumed epoch: 0, iter: 1' in log
    assert 'Iter(train) [2/3]' in log and 'Iter(train) [3/3]' in log and 'Iter(train) [1/3]' not in log
    with allow_runner_checkpoints():
        final = torch.load(dist_train.wd / 'iter_3.pth', map_location='cpu', weights_only=True)
    assert final['meta']['iter'] == 3


@pytest.fixture(scope='module')
def single_test(tiny, dist_train, tmp_path_factory) -> SimpleNamespace:
    """tools/test.py's library call in this process on the final checkpoint: metrics and labelId PNGs."""
    out = tmp_path_factory.mktemp('single_test')
    cfg = load_config(str(tiny / 'tiny.py'), work_dir=str(out / 'wd'))
    metrics = run_test(cfg, str(dist_train.wd / 'iter_3.pth'), out_dir=str(out / 'pred'))
    return SimpleNamespace(metrics=metrics, pred=out / 'pred')


def read_predictions(folder: Path) -> dict:
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob('*.png'))}


def test_distributed_test_counts_each_image_once(tiny, dist_train, single_test):
    """3 images on 2 processes: the sampler pads rank 1 with a repeat of image 0, which must not be counted."""
    proc = torchrun(tiny, 'test.py', 'tiny.py', dist_train.wd / 'iter_3.pth', '--work-dir', 'wdt', '--out-dir', 'pred')
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    found = METRIC_LINE.findall(log)
    assert len(found) == 1, log[-3000:]
    dist_metrics = dict(zip(('aAcc', 'mIoU', 'mAcc'), map(float, found[0])))
    assert dist_metrics == {k: single_test.metrics[k] for k in dist_metrics}
    assert 0 < dist_metrics['mIoU'] < 100
    assert 'wrote 3 labelId predictions' in log
    dist_pred, one_pred = read_predictions(tiny / 'pred'), read_predictions(single_test.pred)
    assert len(one_pred) == 3 and dist_pred.keys() == one_pred.keys()
    for name, pred in one_pred.items():
        assert np.array_equal(dist_pred[name], pred), name


def test_test_under_slurm_publishes_the_predictions_once(tiny, dist_train, single_test):
    """srun sets SLURM_PROCID, not RANK: before, every rank took itself for rank 0 and published the predictions (the
    others then failed, or with --force replaced them with an empty folder)."""
    for extra in ([], ['--force']):
        procs = srun(tiny, 'test.py', 'tiny.py', dist_train.wd / 'iter_3.pth', '--work-dir', 'wds', '--out-dir',
                     'pred_slurm', *extra)
        assert [p.returncode for p in procs] == [0, 0], procs[1].stderr[-3000:] + procs[0].stderr[-3000:]
        log = procs[0].stdout + procs[0].stderr
        assert 'Distributed launcher: slurm' in log and 'GPU number: 2' in log  # mmengine's names: 2 processes
        assert len(METRIC_LINE.findall(log)) == 1, log[-3000:]
        published, single = read_predictions(tiny / 'pred_slurm'), read_predictions(single_test.pred)
        assert published.keys() == single.keys() and len(single) == 3
        assert all(np.array_equal(published[name], single[name]) for name in single)


def test_test_tool_runtime_gives_the_eager_predictions(tiny, dist_train, single_test, tmp_path):
    """tools/test.py --runtime routes the network through a deploy runtime inside MMSegmentation's test loop."""
    pytest.importorskip('onnxruntime')
    cfg = load_config(str(tiny / 'tiny.py'), work_dir=str(tmp_path / 'wd'))
    metrics = run_test(cfg, str(dist_train.wd / 'iter_3.pth'), out_dir=str(tmp_path / 'pred'), runtime='onnxruntime')
    assert metrics['mIoU'] == pytest.approx(single_test.metrics['mIoU'], abs=0.05)
    fast, eager = read_predictions(tmp_path / 'pred'), read_predictions(single_test.pred)
    assert fast.keys() == eager.keys() and len(fast) == 3
    agree = np.mean([np.mean(fast[name] == eager[name]) for name in eager])
    assert agree >= 0.999


def test_launcher_without_torchrun_environment_is_a_one_line_error(tiny, monkeypatch):
    for name in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    cfg = load_config(str(tiny / 'tiny.py'), launcher='pytorch')
    with pytest.raises(ValueError, match=r'--launcher pytorch: RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT '
                                         r'not set; start the tool with `torchrun --nproc_per_node N'):
        init_cpu_distributed(cfg)


def test_slurm_environment_becomes_torch_distributed_variables():
    env = dict(SLURM_PROCID='5', SLURM_NTASKS='8', SLURM_NODELIST='node[01-02]', SLURM_LOCALID='1',
               MASTER_ADDR='node01')
    assert slurm_env(env) == dict(RANK='5', WORLD_SIZE='8', LOCAL_RANK='1', MASTER_ADDR='node01', MASTER_PORT='29500')
    assert slurm_env(env, port=29612)['MASTER_PORT'] == '29612'
    with pytest.raises(ValueError, match='SLURM_NTASKS not set; start the tool with srun'):
        slurm_env(dict(SLURM_PROCID='0', SLURM_NODELIST='n1'))


def test_an_error_every_rank_finds_is_printed_once(tiny):
    """A checkpoint that does not fit, under torchrun: both ranks refuse it, rank 0 alone says so."""
    bad = tiny / 'notes.pth'
    bad.write_text('not a checkpoint\n')
    proc = torchrun(tiny, 'test.py', 'tiny.py', bad, '--work-dir', 'wd_bad')
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert errors == [f'error: {bad}: not a PyTorch checkpoint (Unsupported operand 110)'], proc.stderr[-3000:]


def test_a_rank_whose_error_rank_0_does_not_share_says_it_itself_after_the_grace(monkeypatch, capsys):
    """Rank 1 leaves a pre-group error to rank 0 and waits (torchrun ends it when rank 0 fails): not ended, it reports
    the error itself, tagged. An interrupt stays silent on rank 1."""
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setattr(cli, 'REPORT_GRACE_S', 0.2)

    def bad_input() -> None:
        raise ValueError('x.pth: only rank 1 cannot read it')

    with pytest.raises(SystemExit, match='2'):
        cli.run_cli(bad_input)
    assert capsys.readouterr().err == '[rank 1] error: x.pth: only rank 1 cannot read it\n'

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit, match='130'):
        cli.run_cli(interrupted)
    assert capsys.readouterr().err == ''


def test_a_checkpoint_save_refused_under_torchrun_stops_every_rank_with_one_line(tiny):
    """Two processes; rank 0's save of iter_2.pth crosses a file-size limit: both ranks stop (no rank left waiting
    in a collective), the line is printed once, iter_1.pth (``max_keep_ckpts=1``) and ``last_checkpoint`` are
    untouched, and ``--resume`` goes on to the end."""
    wd = tiny / 'wd_full'
    options = ['--cfg-options', 'default_hooks.checkpoint.max_keep_ckpts=1']
    first = torchrun(tiny, 'train.py', 'tiny.py', '--work-dir', wd, *options, f'load_from={tiny / "init.pth"}',
                     'train_cfg.max_iters=1')
    assert first.returncode == 0, first.stderr[-3000:]
    kept = {name: hashlib.sha256((wd / name).read_bytes()).hexdigest() for name in ('iter_1.pth', 'last_checkpoint')}
    failed = torchrun(tiny, 'train.py', 'tiny.py', '--work-dir', wd, '--resume', *options,
                      file_size_limit=(wd / 'iter_1.pth').stat().st_size // 2)
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith('error:')]
    assert errors == [f'error: could not write {wd}/iter_2.pth: File too large'], failed.stderr[-3000:]
    assert {name: hashlib.sha256((wd / name).read_bytes()).hexdigest() for name in kept} == kept
    assert sorted(p.name for p in wd.glob('*.pth*')) == ['iter_1.pth'] and not list(wd.glob('.*'))
    resumed = torchrun(tiny, 'train.py', 'tiny.py', '--work-dir', wd, '--resume', *options)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in wd.glob('*.pth')) == ['iter_3.pth']

"""The GPU suite (`make test-gpu` on a machine with NVIDIA GPUs; the CPU suite skips it): what a GPU user runs, on
CUDA, on the tiny PSPNet-RepVGG of the CPU tests. Training with --amp and SyncBN, resume, test, conversion with its
proof, ``init_segmentor(device='cuda')``, the benchmark on cuda:0 and cuda:1, QAT, and a 2-GPU torchrun train and
test. The parts of these paths that do not need a GPU are tested on the CPU (tests/test_gpu_and_cluster.py)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, make_tiny, run_tool_in_process

pytestmark = pytest.mark.gpu

ITERS = 20


def needs_gpus(count: int = 1) -> None:
    if not torch.cuda.is_available() or torch.cuda.device_count() < count:
        pytest.skip(f'needs {count} visible NVIDIA GPU(s)')


def run_tool(tool: str, *args, cwd: Path):
    proc = run_tool_in_process(tool, *args, cwd=cwd)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """20 iterations with --amp (SyncBN layers, one process), then --resume to 25."""
    needs_gpus()
    root = tmp_path_factory.mktemp('gpu')
    config, _ = make_tiny(root)
    options = ['--cfg-options', f'train_cfg.max_iters={ITERS}', f'default_hooks.checkpoint.interval={ITERS}']
    first = run_tool('train.py', config, '--work-dir', root / 'wd', '--amp', *options, cwd=root)
    resumed = run_tool('train.py', config, '--work-dir', root / 'wd', '--resume', '--amp', '--cfg-options',
                       f'train_cfg.max_iters={ITERS + 5}', f'default_hooks.checkpoint.interval={ITERS + 5}', cwd=root)
    return root, config, first, resumed


def test_amp_training_with_syncbn_and_resume_on_cuda(trained):
    root, config, first, resumed = trained
    log = first.stdout + first.stderr
    assert "type='AmpOptimWrapper'" in log  # the config the Runner logs
    losses = [float(v) for v in re.findall(r'\bloss: ([\d.]+)', log)]
    assert len(losses) >= ITERS // 10 and all(torch.isfinite(torch.tensor(losses)))
    saved = torch.load(root / 'wd' / f'iter_{ITERS + 5}.pth', map_location='cpu', weights_only=False)
    assert saved['meta']['iter'] == ITERS + 5
    assert f'resumed epoch: 0, iter: {ITERS}' in resumed.stdout + resumed.stderr


def test_test_tool_on_cuda_names_the_precision(trained):
    root, config, _, _ = trained
    proc = run_tool('test.py', config, root / 'wd' / f'iter_{ITERS + 5}.pth', '--work-dir', root / 'wt',
                    '--out-dir', root / 'pred', cwd=root)
    log = proc.stdout + proc.stderr
    assert re.search(r'mIoU: [\d.]+', log)
    assert 'runtime native: eager' in log
    precision = 'tf32' if torch.cuda.get_device_capability()[0] >= 8 else 'fp32'  # PyTorch's default: TF32 on
    assert f'the figures above were computed by runtime eager in {precision}' in log
    assert len(list((root / 'pred').glob('*.png'))) == 2


def test_conversion_proof_and_init_segmentor_on_cuda(trained):
    from repseg.apis import inference, init_segmentor
    from repseg.deploy import verify_models
    root, config, _, _ = trained
    run_tool('convert_to_deploy.py', config, root / 'wd' / f'iter_{ITERS + 5}.pth', '--out-dir', root / 'deploy',
             '--shape', '128', '256', cwd=root)
    ref = init_segmentor(str(config), str(root / 'wd' / f'iter_{ITERS + 5}.pth'), device='cuda')
    dep = init_segmentor(str(root / 'deploy' / 'deploy_config.py'), str(root / 'deploy' / 'deploy.pth'),
                         device='cuda')
    assert next(dep.parameters()).is_cuda and dep.runtime == 'eager'
    diffs = verify_models(ref, dep, (128, 256))  # on CUDA, in IEEE fp32 (TF32 off)
    assert all(d.passed for d in diffs), [str(d) for d in diffs]
    image = next((root / 'data').rglob('*_leftImg8bit.png'))
    assert inference(dep, str(image)).shape == (64, 128)


@pytest.mark.parametrize('index', [0, 1])
def test_benchmark_on_each_gpu(trained, index):
    needs_gpus(index + 1)
    root, config, _, _ = trained
    out = root / f'bench{index}'
    run_tool('benchmark.py', '--configs', config, '--device', f'cuda:{index}', '--shape', '128', '256',
             '--repeats', '2', '--out-dir', out, cwd=root)
    recs = json.loads((out / 'benchmark.json').read_text())
    ok = [r for r in recs if 'images_per_s' in r]
    assert ok and all(r['device'] == f'cuda:{index}' and r['runtime'] == 'eager' for r in ok)
    assert all(r['peak_mem_mb'] > 0 for r in ok)  # this GPU's own statistics
    assert all(r['machine'] == torch.cuda.get_device_name(index) for r in recs)


def test_qat_on_cuda_trains_or_falls_back_in_one_line(trained):
    pytest.importorskip('nncf')
    from repseg.quantization.qat import has_nvcc
    root, config, _, _ = trained
    qat = root / 'qat.py'
    qat.write_text(f"""_base_ = ['./{config.name}']
custom_imports = dict(imports=['repseg', 'repseg.quantization.qat'], allow_failed_imports=False)
model = dict(_delete_=True, type='QATEncoderDecoder', float_config='{config}',
             checkpoint='{root / 'wd' / f'iter_{ITERS + 5}.pth'}', num_calib=2)
train_cfg = dict(max_iters=2, val_interval=2)
param_scheduler = []
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
custom_hooks = [dict(type='QATExportHook', out_dir='int8')]
""")
    proc = run_tool('train.py', qat, '--work-dir', root / 'wq', cwd=root)
    assert (root / 'wq' / 'int8' / 'int8_config.py').is_file()
    fallback = 'NNCF\'s fake quantizers run as PyTorch ops' in proc.stdout + proc.stderr
    assert fallback == (not has_nvcc())


def test_torchrun_on_two_gpus_trains_and_tests(trained):
    needs_gpus(2)
    root, config, _, _ = trained
    env = dict(os.environ, OMP_NUM_THREADS='1')

    def torchrun(tool, *args):
        proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                               str(REPO / 'tools' / tool), *map(str, args), '--launcher', 'pytorch'],
                              cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout + proc.stderr
    log = torchrun('train.py', config, '--work-dir', 'wd2', '--cfg-options', 'train_cfg.max_iters=4',
                   'default_hooks.checkpoint.interval=4')
    assert 'nccl' in log
    log = torchrun('test.py', config, root / 'wd2' / 'iter_4.pth', '--work-dir', 'wt2', '--out-dir', 'pred2')
    assert len(re.findall(r'Iter\(test\).*mIoU: [\d.]+', log)) == 1
    assert len(list((root / 'pred2').glob('*.png'))) == 2

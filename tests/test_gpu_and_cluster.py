"""What GPU and cluster users run, tested on the CPU: the CUDA side faked where it is only asked (availability, device
counts, the GPU's statistics, nvcc), so that each GPU path has a test here; tests/test_gpu.py runs them for real."""
import configparser
import re
import subprocess
import sys
import types
from typing import Any, Dict, List

import mmengine.device.utils as mmengine_device
import pytest
import torch
from conftest import REPO
from mmengine.device import get_device
from mmengine.model import is_model_wrapper
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

from repseg.benchmark import suite
from repseg.benchmark.worker import PeakMemory
from repseg.engine import cli
from repseg.engine.device import select_device
from repseg.runtime import with_runtime
from repseg.runtime.rewrite import MatmulAdaptiveAvgPool2d, averaging_matrix
from repseg.utils import timed_calls
from repseg.utils.cuda import float_precision, ieee_fp32, tf32_enabled
from repseg.version import MIN_TORCH, check_torch


@pytest.fixture
def fake_gpus(monkeypatch):
    """A machine with two GPUs as far as availability and counts go; what is asked of them is recorded."""
    calls: List[tuple] = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    for name, value in (('synchronize', None), ('reset_peak_memory_stats', None), ('memory_allocated', 1 << 20),
                        ('max_memory_allocated', 5 << 20), ('set_device', None)):
        monkeypatch.setattr(torch.cuda, name, lambda device=None, name=name, value=value:
                            calls.append((name, str(device))) or value)
    return calls


def test_the_cpu_suite_runs_with_cuda_hidden():
    """`make test` on a machine with GPUs: hidden from this process before mmengine chose its device, and from the
    processes the tests start (torchrun, benchmark workers) through the environment."""
    import os
    assert os.environ.get('CUDA_VISIBLE_DEVICES') == ''
    assert not torch.cuda.is_available() and get_device() == 'cpu'


def test_device_cpu_keeps_a_run_on_the_cpu_of_a_gpu_machine(monkeypatch, fake_gpus):
    monkeypatch.setattr(mmengine_device, 'DEVICE', 'cuda')  # what mmengine decided at import on a GPU machine
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0,1')
    assert select_device('cpu', 'pytorch') == 'cpu'
    assert get_device() == 'cpu'  # the Runner's device, and RepSeg's gloo path under torchrun
    import os
    assert os.environ['CUDA_VISIBLE_DEVICES'] == ''


def test_device_cuda_n_is_checked_and_made_current(monkeypatch, fake_gpus):
    monkeypatch.setattr(mmengine_device, 'DEVICE', 'cuda')
    assert select_device('cuda:1') == 'cuda'
    assert ('set_device', '1') in fake_gpus
    with pytest.raises(ValueError, match=r'^--device cuda:2: expected cuda:0 to cuda:1 on this machine$'):
        select_device('cuda:2')
    with pytest.raises(ValueError, match=r'under --launcher pytorch each process takes the GPU of its LOCAL_RANK'):
        select_device('cuda:1', 'pytorch')
    with pytest.raises(ValueError, match=r'^--device gpu: expected cpu, cuda or cuda:N$'):
        select_device('gpu')


def test_device_cuda_without_a_gpu_is_one_line():
    with pytest.raises(ValueError, match=r'^--device cuda: no CUDA device is visible here .*; use --device cpu$'):
        select_device('cuda')


def test_amp_is_refused_on_a_gpu_machine_when_the_run_is_on_the_cpu(monkeypatch, fake_gpus, tmp_path):
    from conftest import make_tiny

    from repseg.engine import load_config, train
    config, _ = make_tiny(tmp_path)
    monkeypatch.setattr(mmengine_device, 'DEVICE', 'cuda')
    select_device('cpu')
    with pytest.raises(ValueError, match=r"^--amp: needs a CUDA device .*; this run is on the cpu: train without"):
        train(load_config(str(config), work_dir=str(tmp_path / 'wd')), amp=True)


def test_tf32_is_named_and_switched_off_where_exactness_is_judged(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda index=None: (8, 0))  # Ampere
    assert tf32_enabled()  # PyTorch's default for cuDNN convolutions
    assert float_precision('cuda') == 'tf32' and float_precision('cuda:1') == 'tf32'
    assert float_precision('cpu') == 'fp32'
    with ieee_fp32():
        assert not tf32_enabled() and float_precision('cuda') == 'fp32'
    assert tf32_enabled()
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda index=None: (7, 0))  # Volta: no TF32
    assert float_precision('cuda') == 'fp32'


def test_test_results_on_an_ampere_gpu_are_labelled_tf32(monkeypatch):
    """``with_runtime`` on a model whose parameters are on CUDA: eager, precision 'tf32' (what computes the figures)."""
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda index=None: (9, 0))

    class OnGPU(nn.Module):
        def parameters(self, recurse=True):
            yield types.SimpleNamespace(device=torch.device('cuda', 0))
    model = with_runtime(OnGPU(), 'native', log=lambda line: None)
    assert (model.runtime, model.runtime_precision) == ('eager', 'tf32')


def test_the_conversion_proof_runs_in_ieee_fp32(monkeypatch, tmp_path):
    from conftest import make_tiny

    from repseg.apis import init_segmentor
    from repseg.deploy import verify
    config, checkpoint = make_tiny(tmp_path)
    model = init_segmentor(str(config), str(checkpoint), runtime='eager')
    seen = []
    real = verify.compare_logits
    monkeypatch.setattr(verify, 'compare_logits', lambda *a, **k: seen.append(tf32_enabled()) or real(*a, **k))
    assert all(d.passed for d in verify.verify_models(model, model, (64, 64)))
    assert seen == [False] and tf32_enabled()


def test_benchmark_reads_the_timed_gpu_not_gpu_0(fake_gpus):
    memory = PeakMemory('cuda:1')
    memory.start()
    result = memory.stop()
    timed_calls(lambda: None, 2, 'cuda:1')
    assert fake_gpus and all(device == 'cuda:1' for name, device in fake_gpus)
    assert {name for name, _ in fake_gpus} == {
        'synchronize', 'reset_peak_memory_stats', 'memory_allocated', 'max_memory_allocated'}
    assert result['peak_mem_mb'] == 5 and result['mem_method'] == 'cuda:1 max_memory_allocated'


def test_benchmark_on_a_gpu_refuses_cpu_runtimes_before_measuring(fake_gpus, tmp_path):
    assert suite.default_runtimes('cuda:1') == ['eager'] and suite.default_runtimes('cpu') == ['eager', 'onnxruntime']
    for runtime in ('onnxruntime', 'openvino_int8'):
        with pytest.raises(ValueError, match=rf"^runtime '{runtime}' runs on cpu only; with --device cuda:1 measure "
                                             r'--runtime eager, or this runtime with --device cpu$'):
            suite.run_benchmark(['configs/pspnet_repvgg_a0.py'], str(tmp_path), device='cuda:1',
                                runtimes=['eager', runtime])
    with pytest.raises(ValueError, match=r"^device='cuda:2': expected cuda:0 to cuda:1 here$"):
        suite.run_benchmark(['configs/pspnet_repvgg_a0.py'], str(tmp_path), device='cuda:2')
    assert not (tmp_path / 'logs').exists()  # nothing started


class FakeWorker:
    """Stands in for a worker process: records when it is started, timed, finished and closed."""

    events: List[str] = []

    def __init__(self, job):
        self.job, self.info, self.times, self.error, self.proc = job, {}, {}, '', None

    def start(self, payload: Dict[str, Any], log_dir, env) -> None:
        self.events.append(f'start {self.job.label}')
        self.info['gmacs'] = 1.0

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        self.events.append(f'{message["cmd"]} {self.job.label}')
        if message['cmd'] == 'time':
            return {'eager' if self.job.kind == 'ceiling' else 'model': [0.01]}
        return {'peak_mem_mb': 0.0, 'peak_mem_delta_mb': 0.0}  # a GPU's statistics read on another GPU

    def close(self) -> None:
        self.events.append(f'close {self.job.label}')


@pytest.mark.parametrize('device, sequential', [('cpu', None), ('cuda:1', None), ('cpu', True)])
def test_benchmark_interleaves_on_the_cpu_and_measures_one_model_at_a_time_on_a_gpu(
        device, sequential, fake_gpus, monkeypatch, tmp_path):
    """On a GPU every model would hold a CUDA context and its weights at once: there each is measured and ended before
    the next starts. Peak memories of 0 MB give no ratio instead of a ZeroDivisionError that lost the whole run."""
    FakeWorker.events = []
    monkeypatch.setattr(suite, 'Worker', FakeWorker)
    configs = ['configs/pspnet_repvgg_a0.py', 'configs/baselines/pspnet_r50-d8_cityscapes_713x713.py']
    recs = suite.run_benchmark(configs, str(tmp_path), device=device, runtimes=['eager'], backbone='none',
                               repeats=2, sequential=sequential, log=lambda line: None)
    labels = [job.label for job in suite.plan_jobs([str(REPO / c) for c in configs], ['eager'], 'none')]
    if device == 'cpu' and not sequential:
        assert FakeWorker.events[:len(labels)] == [f'start {label}' for label in labels]
    else:
        per_model = [[f'start {label}', f'time {label}', f'time {label}', f'finish {label}', f'close {label}']
                     for label in labels]
        assert FakeWorker.events[:5 * len(labels)] == [event for group in per_model for event in group]
    deploy = next(r for r in recs if r['form'] == 'deploy')
    assert deploy['speedup_vs_train'] == pytest.approx(1.0) and deploy['mem_ratio_vs_train'] is None


def test_qat_on_cuda_without_nvcc_falls_back_to_nncf_reference_functions(monkeypatch):
    """NNCF builds its CUDA kernels at the first CUDA tensor; without nvcc that was a traceback at iteration 1. The
    fallback gives NNCF's reference functions, which compute what its CPU kernels compute."""
    pytest.importorskip('nncf')
    from nncf.torch.quantization import extensions, quantize_functions

    from repseg.quantization import qat
    namespace = extensions.ExtensionNamespace(extensions.QuantizedFunctionsCUDALoader())  # NNCF with CUDA visible
    monkeypatch.setattr(extensions, 'QuantizedFunctionsCUDA', namespace)
    monkeypatch.setattr(quantize_functions, 'QuantizedFunctionsCUDA', namespace)
    monkeypatch.setattr(qat, 'has_nvcc', lambda: True)
    assert not qat.nncf_cuda_fallback(log=pytest.fail) and namespace._loaded_namespace is None
    monkeypatch.setattr(qat, 'has_nvcc', lambda: False)
    lines = []
    assert qat.nncf_cuda_fallback(log=lines.append)
    assert len(lines) == 1 and lines[0].startswith('QAT on CUDA without the CUDA toolkit (no nvcc found)')
    x = torch.randn(2, 8, 5, 5)
    low, rng = torch.full((1, 8, 1, 1), -1.5), torch.full((1, 8, 1, 1), 3.0)
    fallback = namespace.get('Quantize_forward')(x, low, rng, 256)
    reference = extensions.ReferenceQuantizedFunctions.Quantize_forward(x, low, rng, 256)
    assert torch.equal(fallback, reference) and fallback.unique().numel() > 10
    assert qat.nncf_cuda_fallback(log=pytest.fail)  # once in place, said once


def test_pooling_rewrite_builds_its_matrices_on_the_input_device():
    x = torch.empty(1, 4, 9, 7, device='meta')
    assert averaging_matrix(9, 3, device='meta').device.type == 'meta'
    assert MatmulAdaptiveAvgPool2d(3)(x).shape == (1, 4, 3, 3)  # a CPU matrix against a meta input would raise


def test_torch_older_than_the_minimum_is_refused_at_import_in_one_line():
    check_torch('2.5.0') or check_torch('2.13.0+cu128')
    with pytest.raises(ImportError, match=r'^RepSeg needs torch >= 2\.5; this environment has torch 2\.4\.1\+cu121: '):
        check_torch('2.4.1+cu121')
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'setup.cfg')
    wanted = '.'.join(map(str, MIN_TORCH))
    assert f'torch>={wanted}' in cfg['options']['install_requires'].split()
    assert f'v >= {MIN_TORCH}' in (REPO / 'Makefile').read_text()  # the system CUDA torch the Makefile keeps


def test_a_distributed_test_wraps_any_model_without_ddp():
    """DDP refuses a model without parameters (a tools/quantize.py folder); a test needs no synchronization."""
    class NoParameters(nn.Module):
        def test_step(self, data):
            return ['tested', data]
    wrapper = MODEL_WRAPPERS.build(dict(type='TestDistributedWrapper'), default_args=dict(module=NoParameters()))
    assert is_model_wrapper(wrapper) and wrapper.test_step(3) == ['tested', 3]


def test_a_rank_started_by_srun_is_known_before_the_group_starts(monkeypatch, capsys):
    """srun sets SLURM_PROCID, not RANK: rank 1's error is left to rank 0 (and after the grace, tagged)."""
    for name in ('RANK', 'WORLD_SIZE'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('SLURM_PROCID', '1')
    monkeypatch.setenv('SLURM_NTASKS', '2')
    monkeypatch.setattr(cli, 'REPORT_GRACE_S', 0.0)

    def bad_input() -> None:
        raise ValueError('x.pth: not a checkpoint')
    with pytest.raises(SystemExit):
        cli.run_cli(bad_input)
    assert capsys.readouterr().err == '[rank 1] error: x.pth: not a checkpoint\n'


def test_an_error_after_a_progress_bar_starts_its_own_line():
    code = ('from repseg.engine import run_cli\n'
            'from repseg.utils.progress import LineProgressBar\n'
            'def main():\n'
            '    bar = LineProgressBar(10)\n'
            '    bar.update()\n'
            '    raise ValueError("out/x.png: could not write")\n'
            'run_cli(main)\n')
    proc = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    assert proc.returncode == 2
    lines = proc.stdout.decode().split('\n')  # the bar redraws itself after '\r' on one line
    assert lines[-2:] == ['error: out/x.png: could not write', '']
    assert re.match(r'^\[ *\] 0/10, elapsed: 0s, ETA:\r\[>+ *\] 1/10, .*ETA: +\d+s$', lines[-3])

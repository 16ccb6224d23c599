"""tools/benchmark.py at a tiny shape: the JSON fields and the consistency of its ratios, not the speed."""
import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import REPO, randomize_bn
from torch import nn

from repseg.benchmark import INT8_RUNTIMES, seeded_segmentor, to_form
from repseg.benchmark.complexity import count_macs
from repseg.models import SegLogits
from repseg.models.utils import fuse_conv_bn_pairs
from repseg.runtime import RUNTIMES, prepare
from repseg.runtime.rewrite import StaticAdaptiveAvgPool2d, specialize_adaptive_pools

A0 = 'configs/pspnet_repvgg_a0.py'
R50 = 'configs/baselines/pspnet_r50-d8_cityscapes_713x713.py'
FIELDS = ('model', 'form', 'runtime', 'images_per_s', 'peak_mem_mb', 'params_m', 'gmacs', 'gflops_per_s',
          'latency_ms', 'ceiling_ratio', 'speed_vs_baseline')


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    cmd = [sys.executable, 'tools/benchmark.py', '--configs', A0, R50, '--shape', '65', '65', '--repeats', '1',
           '--warmup', '1', '--runtime', 'eager,onnxruntime', '--backbone', 'none', '--out', str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / 'benchmark.json').read_text())


def test_outputs_and_fields(bench):
    out, recs = bench
    tables = (out / 'benchmark.md').read_text()
    assert '## Targets' not in tables and 'target' not in tables.lower()  # goals live in docs/benchmark.md
    assert tables.count('| pspnet_') == 5
    assert (out / 'benchmark.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    keys = {(r['model'], r['form'], r['runtime']) for r in recs}
    assert keys == {('pspnet_repvgg_a0', 'train', 'eager'), ('pspnet_repvgg_a0', 'deploy', 'eager'),
                    ('pspnet_repvgg_a0', 'deploy', 'onnxruntime'), ('pspnet_r50-d8', 'baseline', 'eager'),
                    ('pspnet_r50-d8', 'baseline', 'onnxruntime')}
    for rec in recs:
        assert 'error' not in rec, rec
        for name in FIELDS:
            assert name in rec, (name, rec['model'], rec['form'])
        assert rec['form'] in ('train', 'deploy', 'baseline')
        assert rec['images_per_s'] > 0 and rec['peak_mem_mb'] > 0 and rec['gmacs'] > 0
        assert rec['shape'] == [65, 65] and rec['batch'] == 1


def test_ratios_are_consistent(bench):
    _, recs = bench
    by = {(r['model'], r['form'], r['runtime']): r for r in recs}
    base = by['pspnet_r50-d8', 'baseline', 'eager']
    train = by['pspnet_repvgg_a0', 'train', 'eager']
    for rec in recs:
        assert close(rec['gflops_per_s'], 2 * rec['gmacs'] * rec['images_per_s'])
        assert close(rec['ceiling_ratio'], rec['gflops_per_s'] / rec['ceiling_gflops_per_s'])
        assert close(rec['speed_vs_baseline']['pspnet_r50-d8'], rec['images_per_s'] / base['images_per_s'])
        same = by['pspnet_r50-d8', 'baseline', rec['runtime']]
        assert close(rec['speed_vs_baseline_same_runtime']['pspnet_r50-d8'],
                     rec['images_per_s'] / same['images_per_s'])
        assert close(rec['images_per_s'], rec['batch'] * 1000 / rec['latency_ms'])
    for runtime in ('eager', 'onnxruntime'):
        deploy = by['pspnet_repvgg_a0', 'deploy', runtime]
        assert close(deploy['speedup_vs_train'], deploy['images_per_s'] / train['images_per_s'])
        assert close(deploy['mem_ratio_vs_train'], deploy['peak_mem_mb'] / train['peak_mem_mb'])
    # re-parameterization leaves the same parameters in fewer tensors, the multiply-adds drop with the 1x1 branches
    assert by['pspnet_repvgg_a0', 'deploy', 'eager']['gmacs'] < train['gmacs']
    assert by['pspnet_repvgg_a0', 'deploy', 'eager']['params_m'] < train['params_m']


def test_parity_recorded(bench):
    _, recs = bench
    for rec in recs:
        if rec['runtime'] != 'eager':
            par = rec['parity']
            assert par['passed'] and par['max_rel'] <= 1e-4 and par['tolerance'] == 1e-4 * par['max_logit']
    deploy = next(r for r in recs if (r['form'], r['runtime']) == ('deploy', 'eager'))
    assert deploy['reparam_parity']['passed'], deploy['reparam_parity']


#: A RepVGG PSPNet small enough for a quick int8 benchmark run.
TINY = """_base_ = ['{base}']
model = dict(backbone=dict(arch=dict(_delete_=True, num_blocks=(1, 2, 2, 1), width_factor=(0.25, 0.25, 0.25, 0.5))),
             decode_head=dict(in_channels=256, channels=32), auxiliary_head=dict(in_channels=64, channels=16))
"""


@pytest.fixture(scope='module')
def bench_int8(tmp_path_factory):
    pytest.importorskip('nncf')
    out = tmp_path_factory.mktemp('bench_int8')
    config = out / 'pspnet_repvgg_tiny.py'
    config.write_text(TINY.format(base=REPO / 'configs' / 'pspnet_repvgg_a0_sample.py'))
    cmd = [sys.executable, 'tools/benchmark.py', '--configs', str(config), '--shape', '65', '65', '--repeats', '1',
           '--runtime', 'openvino,openvino_int8', '--backbone', 'none', '--out', str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / 'benchmark.json').read_text())


def test_int8_rows(bench_int8):
    """int8 rows carry parity against fp32 (recorded, not judged), both weight sizes, the calibration source, the
    speed-up over the model's fastest fp32 runtime, and the CPU's int8 instruction set."""
    out, recs = bench_int8
    by = {(r['form'], r['runtime']): r for r in recs}
    assert set(by) == {('train', 'eager'), ('deploy', 'openvino'), ('deploy', 'openvino_int8')}
    fp32, int8 = by['deploy', 'openvino'], by['deploy', 'openvino_int8']
    assert fp32['parity']['passed'] and fp32['parity']['max_rel'] <= 1e-4
    for name in ('held_out_frame', 'random_input'):
        par = int8['int8_parity'][name]
        assert par['passed'] is None and par['tolerance'] is None and 0 <= par['agreement'] <= 1
        assert par['max_rel'] > 0
    assert int8['weight_mb'] < int8['weight_mb_fp32'] / 3 and close(int8['weight_mb_fp32'], fp32['weight_mb'])
    assert int8['calibration'].startswith('4 crops of ')
    assert close(int8['speedup_vs_fp32_fastest'], int8['images_per_s'] / fp32['images_per_s'])
    assert int8['fp32_fastest_runtime'] == 'openvino' and 'ceiling_ratio' not in int8
    for rec in recs:
        assert rec['cpu_isa']['int8'] in ('AMX', 'AVX-512 VNNI', 'AVX-VNNI', 'AVX2 only', 'no AVX2', 'unknown')
    md = (out / 'benchmark.md').read_text()
    assert 'CPU int8 instruction set: ' in md and '## int8 against fp32' in md


def test_unknown_runtime_is_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/benchmark.py', '--runtime', 'eager,tensorrt', '--configs', A0,
                           '--out', str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: runtime 'tensorrt': unknown; expected one of {', '.join([*RUNTIMES, *INT8_RUNTIMES])}"]


def test_static_adaptive_pool_matches_pytorch():
    x = torch.randn(2, 8, 90, 77)
    for bins in (1, 2, 3, 6):
        ref = nn.functional.adaptive_avg_pool2d(x, bins)
        assert torch.allclose(StaticAdaptiveAvgPool2d((90, 77), (bins, bins))(x), ref, atol=1e-6)


def test_fuse_conv_bn_pairs_is_exact():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8)))
    randomize_bn(model).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
        assert fuse_conv_bn_pairs(model) == 2
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        assert torch.allclose(model(x), ref, atol=1e-5)


@pytest.mark.parametrize('runtime', list(RUNTIMES))
def test_runtimes_keep_logits(runtime):
    """Every registered runtime keeps a small pooled conv net within 1e-4."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=2, dilation=2)
            self.pool = nn.AdaptiveAvgPool2d(3)
            self.head = nn.Conv2d(32, 5, 1)

        def forward(self, x):
            y = torch.relu(self.conv(x))
            p = nn.functional.interpolate(self.pool(y), size=y.shape[2:], mode='bilinear', align_corners=True)
            return self.head(torch.cat([y, p], 1))

    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(1, 3, 25, 25)
    with torch.inference_mode():
        ref = model(x)
    run = prepare(model, runtime, x)
    with torch.inference_mode():
        out = run(x)
    assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_specialize_replaces_pools():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(2))
    assert specialize_adaptive_pools(model, torch.randn(1, 3, 11, 11)) == 1
    assert isinstance(model[1], StaticAdaptiveAvgPool2d) and model[1].in_size == (9, 9)


def test_macs_match_mmengine_conv_count():
    """The meta-device counter equals mmengine's FlopAnalyzer on every convolution."""
    from mmengine.analysis import FlopAnalyzer
    model = SegLogits(to_form(seeded_segmentor(A0), 'deploy')).eval()
    x = torch.randn(1, 3, 33, 33)
    analyzer = FlopAnalyzer(model, (x,))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    counted = count_macs(model, x)
    assert counted['gmacs'] * 1e9 == pytest.approx(analyzer.by_operator()['conv'], rel=1e-9)
    assert counted['backbone_gmacs'] * 1e9 == pytest.approx(analyzer.by_module()['segmentor.backbone'], rel=1e-9)

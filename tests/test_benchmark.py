"""tools/benchmark.py at a tiny shape: the JSON fields and the consistency of its ratios, not the speed."""
import json
import math

import pytest
import torch
from conftest import REPO, randomize_bn, run_tool_in_process
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
          'latency_ms', 'speed_vs_baseline')
#: A RepVGG PSPNet and an MMSegmentation ResNet PSPNet (its R50-D8 config at depth 18), small enough for one quick
#: run of every kind of row: train and deploy forms, a baseline, eager, OpenVINO fp32 and int8, the conv ceiling.
TINY = {'pspnet_repvgg_tiny.py': """_base_ = ['{repo}/configs/pspnet_repvgg_a0_sample.py']
model = dict(backbone=dict(arch=dict(_delete_=True, num_blocks=(1, 2, 2, 1), width_factor=(0.25, 0.25, 0.25, 0.5))),
             decode_head=dict(in_channels=256, channels=32), auxiliary_head=dict(in_channels=64, channels=16))
""", 'pspnet_r18-d8_tiny.py': """_base_ = ['{repo}/{r50}']
model = dict(pretrained=None, backbone=dict(depth=18), decode_head=dict(in_channels=512, channels=32),
             auxiliary_head=dict(in_channels=256, channels=16))
"""}
REPVGG, BASE = 'pspnet_repvgg_tiny', 'pspnet_r18-d8_tiny'
FP32_RUNTIMES = ('eager', 'openvino')


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    pytest.importorskip('nncf')
    root = tmp_path_factory.mktemp('bench')
    for name, text in TINY.items():
        (root / name).write_text(text.format(repo=REPO, r50=R50))
    out = root / 'out'
    runtimes = ','.join([*FP32_RUNTIMES, 'openvino_int8'])
    proc = run_tool_in_process('benchmark.py', '--configs', *(root / name for name in TINY), '--shape', '65', '65',
                               '--repeats', '1', '--warmup', '1', '--runtime', runtimes, '--backbone', 'none',
                               '--out', out, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(out / name) for name in ('benchmark.json', 'benchmark.md', 'benchmark.png')]
    assert sorted(p.name for p in root.iterdir()) == ['out', *sorted(TINY)]  # built beside it, moved into place
    assert len(list((out / 'logs').glob('*.log'))) == 8  # a log per worker: 7 models x runtimes + the ceiling
    return out, json.loads((out / 'benchmark.json').read_text())


def test_outputs_and_fields(bench):
    out, recs = bench
    tables = (out / 'benchmark.md').read_text()
    assert '## Targets' not in tables and 'target' not in tables.lower()  # goals live in docs/benchmark.md
    assert tables.count('| pspnet_') == 7 + 2  # every row, and the int8 rows again against fp32
    assert (out / 'benchmark.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    keys = {(r['model'], r['form'], r['runtime']) for r in recs}
    assert keys == {(REPVGG, 'train', 'eager'), *((REPVGG, 'deploy', rt) for rt in (*FP32_RUNTIMES, 'openvino_int8')),
                    *((BASE, 'baseline', rt) for rt in (*FP32_RUNTIMES, 'openvino_int8'))}
    for rec in recs:
        assert 'error' not in rec, rec
        for name in FIELDS + (('ceiling_ratio',) if rec['runtime'] in FP32_RUNTIMES else ()):
            assert name in rec, (name, rec['model'], rec['form'])
        assert rec['images_per_s'] > 0 and rec['peak_mem_mb'] > 0 and rec['gmacs'] > 0
        assert rec['shape'] == [65, 65] and rec['batch'] == 1


def test_ratios_are_consistent(bench):
    _, recs = bench
    by = {(r['model'], r['form'], r['runtime']): r for r in recs}
    base = by[BASE, 'baseline', 'eager']
    train = by[REPVGG, 'train', 'eager']
    for rec in recs:
        assert close(rec['gflops_per_s'], 2 * rec['gmacs'] * rec['images_per_s'])
        if rec['runtime'] in FP32_RUNTIMES:  # the ceiling is an fp32 one
            assert close(rec['ceiling_ratio'], rec['gflops_per_s'] / rec['ceiling_gflops_per_s'])
        assert close(rec['speed_vs_baseline'][BASE], rec['images_per_s'] / base['images_per_s'])
        same = by[BASE, 'baseline', rec['runtime']]
        assert close(rec['speed_vs_baseline_same_runtime'][BASE], rec['images_per_s'] / same['images_per_s'])
        assert close(rec['images_per_s'], rec['batch'] * 1000 / rec['latency_ms'])
    for runtime in FP32_RUNTIMES:
        deploy = by[REPVGG, 'deploy', runtime]
        assert close(deploy['speedup_vs_train'], deploy['images_per_s'] / train['images_per_s'])
        assert close(deploy['mem_ratio_vs_train'], deploy['peak_mem_mb'] / train['peak_mem_mb'])
    # re-parameterization leaves the same parameters in fewer tensors, the multiply-adds drop with the 1x1 branches
    assert by[REPVGG, 'deploy', 'eager']['gmacs'] < train['gmacs']
    assert by[REPVGG, 'deploy', 'eager']['params_m'] < train['params_m']


def test_parity_recorded(bench):
    _, recs = bench
    for rec in recs:
        if rec['runtime'] == 'openvino':
            par = rec['parity']
            assert par['passed'] and par['max_rel'] <= 1e-4 and par['tolerance'] == 1e-4 * par['max_logit']
    deploy = next(r for r in recs if (r['form'], r['runtime']) == ('deploy', 'eager'))
    assert deploy['reparam_parity']['passed'], deploy['reparam_parity']


@pytest.mark.parametrize('model, form', [(REPVGG, 'deploy'), (BASE, 'baseline')])
def test_int8_rows(bench, model, form):
    """int8 rows carry parity against fp32 (recorded, not judged), both weight sizes, the calibration source, the
    speed-up over the model's fastest fp32 runtime, its speed over the baseline's fastest fp32 runtime, and the CPU's
    int8 instruction set."""
    out, recs = bench
    by = {(r['model'], r['form'], r['runtime']): r for r in recs}
    fp32, int8 = by[model, form, 'openvino'], by[model, form, 'openvino_int8']
    for name in ('held_out_frame', 'random_input'):
        par = int8['int8_parity'][name]
        assert par['passed'] is None and par['tolerance'] is None and 0 <= par['agreement'] <= 1
        assert par['max_rel'] > 0
    # the fp32 IR holds the torch weights plus a few shape constants (about 100 bytes)
    assert int8['weight_mb'] < int8['weight_mb_fp32'] / 3
    assert 0 <= int8['weight_mb_fp32'] - fp32['weight_mb'] < 1e-3
    assert int8['calibration'].startswith('4 crops of ')
    fastest = max((by[model, form, rt] for rt in FP32_RUNTIMES), key=lambda r: r['images_per_s'])
    assert int8['fp32_fastest_runtime'] == fastest['runtime']
    assert close(int8['speedup_vs_fp32_fastest'], int8['images_per_s'] / fastest['images_per_s'])
    base_fastest = max((by[BASE, 'baseline', rt] for rt in FP32_RUNTIMES), key=lambda r: r['images_per_s'])
    assert close(int8['speed_vs_baseline_fp32_fastest'][BASE], int8['images_per_s'] / base_fastest['images_per_s'])
    assert 'ceiling_ratio' not in int8
    md = (out / 'benchmark.md').read_text()
    assert 'CPU int8 instruction set: ' in md and '## int8 against fp32' in md


def test_unknown_runtime_is_one_line_error(tmp_path):
    proc = run_tool_in_process('benchmark.py', '--runtime', 'eager,tensorrt', '--configs', A0, '--out', tmp_path,
                               cwd=REPO)
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

"""tools/benchmark.py at a tiny shape: the JSON fields and the consistency of its ratios, not the speed."""
import json
import math

import pytest
import torch
from conftest import REPO, randomize_bn, run_tool_in_process
from torch import nn

from repseg.benchmark import INT8_RUNTIMES, seeded_segmentor, to_form
from repseg.benchmark.ceiling import ceiling_runtimes
from repseg.benchmark.models import folder_form, load_quantized, model_name
from repseg.benchmark.report import markdown
from repseg.benchmark.suite import Job, Worker, ceiling_request, records
from repseg.models import SegLogits, count_macs
from repseg.models.utils import fuse_conv_bn_pairs
from repseg.runtime import RUNTIMES, prepare

A0 = 'configs/pspnet_repvgg_a0.py'
R50 = 'configs/baselines/pspnet_r50-d8_cityscapes_713x713.py'
FIELDS = ('model', 'form', 'runtime', 'precision', 'images_per_s', 'peak_mem_mb', 'params_m', 'gmacs', 'gflops_per_s',
          'latency_ms', 'speed_vs_baseline', 'ceiling_precision', 'ceiling_ratio')
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
PRECISION = {'eager': 'fp32', 'openvino': 'fp32', 'openvino_int8': 'int8'}
EQUAL_PRECISION = '## RepSeg models vs the baselines at equal precision'


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def table_rows(md: str, title: str):
    """The cells of the data rows of the table under the section ``title`` of benchmark.md."""
    section = md.split(title + '\n', 1)[1].split('\n## ', 1)[0]
    lines = [line for line in section.splitlines() if line.startswith('| ')]
    return [line.strip('| ').split(' | ') for line in lines[1:]]


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
                               '--profile', '--out-dir', out, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(out / name) for name in ('benchmark.json', 'benchmark.md', 'benchmark.png')]
    assert sorted(p.name for p in root.iterdir()) == ['out', *sorted(TINY)]  # built beside it, moved into place
    assert len(list((out / 'logs').glob('*.log'))) == 8  # a log per worker: 7 models x runtimes + the ceiling
    return out, json.loads((out / 'benchmark.json').read_text())


def test_outputs_and_fields(bench):
    out, recs = bench
    tables = (out / 'benchmark.md').read_text()
    assert '## Targets' not in tables and 'target' not in tables.lower()  # goals live in docs/benchmark.md
    # every row; deploy RepVGG per precision against the ResNet; the int8 rows against fp32; the OpenVINO profiles
    assert tables.count('| pspnet_') == 7 + 2 + 2 + 4
    assert (out / 'benchmark.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    keys = {(r['model'], r['form'], r['runtime']) for r in recs}
    assert keys == {(REPVGG, 'train', 'eager'), *((REPVGG, 'deploy', rt) for rt in (*FP32_RUNTIMES, 'openvino_int8')),
                    *((BASE, 'baseline', rt) for rt in (*FP32_RUNTIMES, 'openvino_int8'))}
    for rec in recs:
        assert 'error' not in rec, rec
        for name in FIELDS:
            assert name in rec, (name, rec['model'], rec['form'])
        assert rec['precision'] == PRECISION[rec['runtime']]
        assert rec['images_per_s'] > 0 and rec['peak_mem_mb'] > 0 and rec['gmacs'] > 0
        assert rec['shape'] == [65, 65] and rec['batch'] == 1


def test_ratios_are_consistent(bench):
    _, recs = bench
    by = {(r['model'], r['form'], r['runtime']): r for r in recs}
    base = by[BASE, 'baseline', 'eager']
    train = by[REPVGG, 'train', 'eager']
    ceiling = recs[0]['ceiling_gflops_per_s_by_runtime']
    # every fp32 runtime installed (requested or not) and the int8 stack quantized by NNCF
    assert list(ceiling) == [*ceiling_runtimes([], 'cpu'), 'openvino_int8'] and 'openvino' in ceiling
    by_precision = {'fp32': max(v for k, v in ceiling.items() if k != 'openvino_int8'),
                    'int8': ceiling['openvino_int8']}
    for rec in recs:
        assert close(rec['gflops_per_s'], 2 * rec['gmacs'] * rec['images_per_s'])
        assert rec['ceiling_gflops_per_s_by_runtime'] == ceiling
        assert rec['ceiling_gflops_per_s_by_precision'] == by_precision
        # each row against the ceiling of its own precision: int8 against the int8 stack
        assert rec['ceiling_precision'] == rec['precision']
        assert rec['ceiling_gflops_per_s'] == by_precision[rec['precision']]
        assert close(rec['ceiling_ratio'], rec['gflops_per_s'] / by_precision[rec['precision']])
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
    assert int8['baseline_fp32_fastest_runtime'][BASE] == base_fastest['runtime']
    base_int8 = by[BASE, 'baseline', 'openvino_int8']
    assert int8['baseline_same_precision_runtime'] == {BASE: 'openvino_int8'}
    assert close(int8['speed_vs_baseline_same_precision'][BASE], int8['images_per_s'] / base_int8['images_per_s'])
    assert int8['ceiling_precision'] == 'int8'
    assert close(int8['ceiling_ratio'], int8['gflops_per_s'] / int8['ceiling_gflops_per_s_by_runtime']['openvino_int8'])
    assert int8['executed_precision'] == 'f32'  # the float layers left in the int8 network
    md = (out / 'benchmark.md').read_text()
    assert 'int8 instruction set: ' in md and '## Reduced precision against fp32' in md


def test_profiles(bench):
    """--profile: each OpenVINO row says where one call spends its time, int8 rows beside the int8 ceiling's kernels."""
    out, recs = bench
    for rec in recs:
        prof = rec.get('profile')
        assert (prof is not None) == (rec['runtime'] != 'eager'), rec['runtime']
        if prof:
            assert prof['layers'] > 0 and sum(prof['by_node_type'].values()) <= prof['total_ms'] + 1e-9
            # PSP's pools run as matmuls in every IR (rewrite.deploy_rewrites), the ResNet baseline's too
            assert not any('AdaptiveAvgPool' in node for node in prof['by_node_type']), prof['by_node_type']
        if rec['precision'] == 'int8':
            assert any('I8' in kernel for kernel in prof['by_exec_type']), prof['by_exec_type']
            assert rec['ceiling_runtime'] == 'openvino_int8'
            assert any('I8' in kernel for kernel in rec['ceiling_profile']['by_exec_type'])
    assert len(table_rows((out / 'benchmark.md').read_text(), '## Where the time goes')) == 4


def test_equal_precision_section(bench):
    """benchmark.md: per precision, the deploy RepVGG's fastest runtime over the ResNet's fastest runtime of the same
    precision and of fp32, and its share of its precision's ceiling, as in the records."""
    out, recs = bench
    md = (out / 'benchmark.md').read_text()
    rows = table_rows(md, EQUAL_PRECISION)
    ok = [r for r in recs if r['part'] == 'model']

    def best(model, form, precision):
        return max((r for r in ok if (r['model'], r['form'], r['precision']) == (model, form, precision)),
                   key=lambda r: r['images_per_s'])
    expected = []
    for precision in ('fp32', 'int8'):
        own, base = best(REPVGG, 'deploy', precision), best(BASE, 'baseline', precision)
        base_fp32 = best(BASE, 'baseline', 'fp32')
        expected.append([REPVGG, 'deploy', precision, own['runtime'], f'{own["images_per_s"]:.3g}',
                         f'{own["images_per_s"] / base["images_per_s"]:.2f}x ({base["runtime"]})',
                         f'{own["images_per_s"] / base_fp32["images_per_s"]:.2f}x ({base_fp32["runtime"]})',
                         f'{100 * own["ceiling_ratio"]:.0f}%'])
    assert rows == expected


def test_unknown_runtime_is_one_line_error(tmp_path):
    proc = run_tool_in_process('benchmark.py', '--runtime', 'eager,tensorrt', '--configs', A0, '--out-dir', tmp_path,
                               cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: runtime 'tensorrt': unknown; expected one of {', '.join([*RUNTIMES, *INT8_RUNTIMES])}"]


def test_bf16_runtime_refused_on_a_cpu_without_bf16(tmp_path, monkeypatch):
    """On an AVX2-only CPU, --runtime openvino_bf16 is refused up front in one line naming the flags it needs."""
    monkeypatch.setattr('repseg.runtime.registry.cpu_flags', lambda: ['fpu', 'sse4_2', 'avx', 'avx2', 'fma'])
    proc = run_tool_in_process('benchmark.py', '--runtime', 'eager,openvino_bf16', '--configs', A0, '--out-dir',
                               tmp_path / 'out', cwd=REPO)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: runtime 'openvino_bf16' needs a CPU with avx512_bf16 or amx_bf16; ")
    assert 'AVX2 only CPU (flags: avx2 fma)' in line
    assert not (tmp_path / 'out').exists()


def _worker(config: str, form: str, runtime: str, seconds: float, **info) -> Worker:
    worker = Worker(Job('model', config, form, runtime))
    worker.times = {'model': [seconds]}
    worker.info = dict(gmacs=1.0, peak_mem_mb=100.0, peak_mem_delta_mb=10.0, **info)
    return worker


def test_ratios_within_precision_on_synthetic_records():
    """A bf16 row faster than every fp32 row is never the fastest fp32 runtime nor held against the fp32 ceiling, and
    its same-precision ratios use bf16 baseline rows only; a folder row is int8 and has the int8 ceiling."""
    ceiling = Worker(Job('ceiling'))  # GFLOP/s: eager 20, openvino 40, openvino_bf16 200, openvino_int8 100
    ceiling.info = {'gmacs': 10.0}
    ceiling.times = {'eager': [1.0], 'openvino': [0.5], 'openvino_bf16': [0.1], 'openvino_int8': [0.2]}
    seconds = {'eager': 1.0, 'openvino': 0.5, 'openvino_bf16': 0.1, 'openvino_int8': 0.25}  # images/s 1, 2, 10, 4
    bf16_parity = {'max_rel': 3e-3, 'agreement': 0.995, 'passed': None}  # recorded, not judged by the fp32 rule
    workers = [_worker('rv.py', 'train', 'eager', 2.0),
               *(_worker('rv.py', 'deploy', rt, t, **({'parity': bf16_parity} if 'bf16' in rt else {}))
                 for rt, t in seconds.items()),
               *(_worker('base.py', 'baseline', rt, 2 * t, **({'executed_precision': 'f32'} if 'bf16' in rt else {}))
                 for rt, t in seconds.items()),
               _worker('fold/int8_config.py', 'int8', 'openvino', 0.2), ceiling]
    recs = records(workers, (65, 65), 1, 'cpu', 2, 1)
    by = {(r['model'], r['form'], r['runtime']): r for r in recs}
    assert {k: r['precision'] for k, r in by.items()} == {
        **{(m, f, rt): {'openvino_bf16': 'bf16', 'openvino_int8': 'int8'}.get(rt, 'fp32')
           for m, f in (('rv', 'deploy'), ('base', 'baseline')) for rt in seconds},
        ('rv', 'train', 'eager'): 'fp32', ('fold', 'int8', 'openvino'): 'int8'}
    assert recs[0]['ceiling_gflops_per_s_by_precision'] == {'fp32': 40.0, 'bf16': 200.0, 'int8': 100.0}
    bf16, int8 = by['rv', 'deploy', 'openvino_bf16'], by['rv', 'deploy', 'openvino_int8']
    fold = by['fold', 'int8', 'openvino']
    for rec in recs:  # the fp32 ceiling is the fastest fp32 runtime's, never the faster bf16 or int8 stack's
        own = {'fp32': 40.0, 'bf16': 200.0, 'int8': 100.0}[rec['precision']]
        assert (rec['ceiling_precision'], rec['ceiling_gflops_per_s']) == (rec['precision'], own)
        assert rec['ceiling_runtime'] == {'fp32': 'openvino', 'bf16': 'openvino_bf16', 'int8': 'openvino_int8'}[
            rec['precision']]
        assert close(rec['ceiling_ratio'], 2 * rec['images_per_s'] / own)
        if rec['precision'] == 'fp32' and rec['form'] != 'train':
            assert rec['baseline_same_precision_runtime'] == {'base': 'openvino'}
    for rec, ratio in ((bf16, 5.0), (int8, 2.0)):  # against the fastest fp32 runtime, openvino, not bf16
        assert rec['fp32_fastest_runtime'] == 'openvino' and close(rec['speedup_vs_fp32_fastest'], ratio)
        assert rec['baseline_fp32_fastest_runtime'] == {'base': 'openvino'}
        assert close(rec['speed_vs_baseline_fp32_fastest']['base'], rec['images_per_s'] / 1.0)
    assert bf16['baseline_same_precision_runtime'] == {'base': 'openvino_bf16'}
    assert close(bf16['speed_vs_baseline_same_precision']['base'], 10 / 5)
    assert int8['baseline_same_precision_runtime'] == {'base': 'openvino_int8'}
    assert close(int8['speed_vs_baseline_same_precision']['base'], 4 / 2)
    assert 'speedup_vs_fp32_fastest' not in fold  # a folder has no fp32 row of its own
    assert close(fold['speed_vs_baseline_same_precision']['base'], 5 / 2)
    assert close(fold['speed_vs_baseline_fp32_fastest']['base'], 5 / 1)
    assert 'speed_vs_baseline_same_precision' not in by['rv', 'train', 'eager']
    md = markdown(recs, dict(shape=[65, 65], batch=1, repeats=1))
    assert 'fp32 **40.0** GFLOP/s (eager 20, openvino 40), bf16 **200.0** GFLOP/s (openvino_bf16 200), int8 ' \
           '**100.0** GFLOP/s (openvino_int8 100)' in md
    assert table_rows(md, EQUAL_PRECISION) == [
        ['rv', 'deploy', 'fp32', 'openvino', '2', '2.00x (openvino)', '2.00x (openvino)', '10%'],
        ['rv', 'deploy', 'bf16', 'openvino_bf16', '10', '2.00x (openvino_bf16)', '10.00x (openvino)', '10%'],
        ['rv', 'deploy', 'int8', 'openvino_int8', '4', '2.00x (openvino_int8)', '4.00x (openvino)', '8%'],
        ['fold', 'int8', 'int8', 'openvino', '5', '2.50x (openvino_int8)', '5.00x (openvino)', '10%']]
    assert '| base | baseline | openvino_bf16 | bf16 (ran f32) |' in md
    assert '| 3.0e-03 not judged |' in md
    reduced = {tuple(row[:3]): row for row in table_rows(md, '## Reduced precision against fp32')}
    assert reduced['rv', 'deploy', 'openvino_bf16'][3:5] == ['bf16', '5.00x (openvino)']
    assert reduced['rv', 'deploy', 'openvino_bf16'][-2:] == ['3.00e-03 of max, argmax 99.50% (random input)', '-']
    assert ('fold', 'int8', 'openvino') in reduced and len(reduced) == 5


def test_ceiling_covers_each_precision_measured():
    """fp32: every installed runtime; bf16 and int8: the requested runtimes, and one for each folder's precision."""
    fp32 = ceiling_runtimes([], 'cpu')
    assert fp32[0] == 'eager' and all(RUNTIMES[name].precision == 'fp32' for name in fp32)
    assert ceiling_runtimes(['openvino', 'openvino_int8', 'openvino_bf16'], 'cpu') == [
        *fp32, 'openvino_int8', 'openvino_bf16']
    assert ceiling_runtimes(['openvino_int8'], 'cuda') == ['eager']
    jobs = [Job('model', 'a.py', 'deploy', 'eager'), Job('model', 'f/int8_config.py', 'int8', 'openvino'),
            Job('ceiling')]
    assert ceiling_request(jobs) == ['eager', 'openvino_int8']


def test_folder_forms(tmp_path):
    """A folder's form is its IR's precision (int8 when unsaid); its name is the folder's; its checkpoint is named
    after the precision."""
    assert folder_form({'ir': {'precision': 'bf16'}}) == 'bf16' and folder_form({'ir': {}}) == 'int8'
    with pytest.raises(ValueError, match=r"model.ir.precision='fp16': expected one of int8, bf16$"):
        folder_form({'ir': {'precision': 'fp16'}})
    assert model_name(str(tmp_path / 'a0_bf16' / 'bf16_config.py')) == 'a0_bf16'
    with pytest.raises(FileNotFoundError, match='bf16.pth: missing'):
        load_quantized(str(tmp_path / 'bf16_config.py'), 'bf16')


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
    """Every registered fp32 runtime keeps a small pooled conv net within 1e-4; bf16 (where offered) within 2e-2."""
    if not RUNTIMES[runtime].offered():
        pytest.skip(f'{runtime}: not offered on this CPU')

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
    assert (out - ref).abs().max() <= (1e-4 if RUNTIMES[runtime].precision == 'fp32' else 2e-2) * ref.abs().max()


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

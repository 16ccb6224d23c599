"""bf16 and ``--runtime auto``: the bf16 refusal on a CPU without bf16, auto's choice for every CPU class, its check of
bf16 against fp32 on the first input (kept, and forced to fall back), the line the tools print, and a bf16 folder
written by tools/quantize.py through tools/test.py. Other CPUs are simulated by replacing the CPU flags the runtime
registry reads (``repseg.runtime.registry.cpu_flags``); OpenVINO itself runs a bf16 request in f32 on a CPU without
bf16, so on such a machine the bf16 code paths run, with f32 arithmetic."""
import copy
import dataclasses
import json
import re

import cv2
import pytest
import torch
from conftest import REPO, make_tiny, run_tool_in_process, tools_test_metrics

from repseg.apis import inference, init_segmentor
from repseg.models import SegLogits
from repseg.runtime import AUTO_TABLE, RUNTIMES, choose_runtime, prepare
from repseg.runtime import registry as runtime_registry
from repseg.runtime import with_runtime
from repseg.runtime.openvino_runtime import OpenVINONetwork, convert_module
from repseg.utils.machine import CPU_CLASSES, cpu_class, cpu_flags, has_bf16

pytest.importorskip('openvino')
pytest.importorskip('onnxruntime')

#: One simulated CPU per class (flags as /proc/cpuinfo lists them).
FLAGS = {
    'AMX': ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_bf16', 'amx_int8'],
    'AVX-512 BF16': ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16'],
    'AVX-512 VNNI': ['avx2', 'fma', 'avx512f', 'avx512_vnni'],
    'AVX-VNNI': ['avx2', 'fma', 'avx_vnni'],
    'AVX2 only': ['avx2', 'fma'],
    'no AVX2': ['sse4_2'],
    'unknown': [],
}
AMX, AVX2 = FLAGS['AMX'], FLAGS['AVX2 only']


def simulate(monkeypatch, flags):
    monkeypatch.setattr(runtime_registry, 'cpu_flags', lambda: list(flags))


def run_tool(tool: str, *args) -> object:
    return run_tool_in_process(tool, *map(str, args), cwd=REPO)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """The tiny RepVGG PSPNet (train form), its generated scenes, and its deploy form."""
    root = tmp_path_factory.mktemp('auto')
    config, checkpoint = make_tiny(root)
    deploy = root / 'deploy'
    proc = run_tool('convert_to_deploy.py', config, checkpoint, '--out-dir', deploy)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, config, checkpoint, deploy / 'deploy_config.py', deploy / 'deploy.pth'


def test_every_cpu_class_has_a_row_and_the_simulated_flags_are_that_class():
    assert set(AUTO_TABLE) == set(CPU_CLASSES) == set(FLAGS)
    for klass, flags in FLAGS.items():
        assert cpu_class(flags) == klass


@pytest.mark.parametrize('klass', list(FLAGS))
def test_auto_choice_for_each_cpu_class(klass):
    flags = FLAGS[klass]
    choice = choose_runtime('deploy', 'cpu', flags)
    if klass in ('AMX', 'AVX-512 BF16'):  # measured: bf16 5.8x (AMX) and 1.8x (Zen 4) the fastest fp32 runtime
        assert (choice.runtime, choice.precision, choice.fallback) == ('openvino_bf16', 'bf16', 'onnxruntime')
    else:  # the fastest fp32 runtime measured; bf16 not chosen where it was not measured faster
        assert (choice.runtime, choice.precision, choice.fallback) == ('onnxruntime', 'fp32', None)
    assert choice.cpu_class == klass and f'for this {klass} CPU' in choice.line()
    assert choose_runtime('baseline', 'cpu', flags).runtime == choice.runtime
    assert choose_runtime('train', 'cpu', flags).runtime == 'eager'  # train-form models keep running eager
    assert choose_runtime('deploy', 'cuda', flags).runtime == 'eager'
    for form in ('int8', 'bf16'):  # a folder runs in its own precision
        for policy in ('auto', 'native'):
            own = choose_runtime(form, 'cpu', flags, policy)
            assert own.runtime == 'openvino'
            assert own.precision == (form if form == 'int8' or klass in ('AMX', 'AVX-512 BF16') else 'f32')
    # native (tools/test.py, repseg.apis): the model's own precision, the fastest fp32 runtime on every class
    native = choose_runtime('deploy', 'cpu', flags, 'native')
    assert (native.runtime, native.precision, native.fallback) == ('onnxruntime', 'fp32', None)
    assert native.line().startswith(f"runtime native: onnxruntime (fp32) for this {klass} CPU [the model's own "
                                    'precision (fp32); ')
    assert choose_runtime('train', 'cpu', flags, 'native').runtime == 'eager'


def test_auto_takes_the_next_runtime_when_the_first_is_not_installed(monkeypatch):
    monkeypatch.setitem(RUNTIMES, 'onnxruntime', dataclasses.replace(RUNTIMES['onnxruntime'], package='not_a_pkg'))
    choice = choose_runtime('deploy', 'cpu', AVX2)
    assert choice.runtime == 'openvino' and 'onnxruntime would be first on this class' in choice.reason


def test_bf16_is_refused_on_a_cpu_without_bf16(monkeypatch, tiny, tmp_path):
    """Asked for explicitly on an AVX2-only CPU: one line naming the flags it needs and the CPU's, exit 2, nothing
    written (tools/infer.py, tools/quantize.py and the registry itself)."""
    simulate(monkeypatch, AVX2)
    message = (r"runtime 'openvino_bf16' needs a CPU with avx512_bf16 or amx_bf16; this is an AVX2 only CPU "
               r"\(flags: avx2 fma\)")
    with pytest.raises(ValueError, match=message):
        runtime_registry.check_offered('openvino_bf16')
    root, config, checkpoint, deploy_cfg, deploy_ckpt = tiny
    image = next((root / 'data' / 'leftImg8bit' / 'val').rglob('*.png'))
    for tool, args in (('infer.py', (deploy_cfg, deploy_ckpt, image, '--out-dir', tmp_path / 'masks',
                                     '--runtime', 'openvino_bf16')),
                       ('quantize.py', (config, checkpoint, '--out-dir', tmp_path / 'bf16', '--precision', 'bf16'))):
        proc = run_tool(tool, *args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert re.fullmatch(f'error: {message}, which offers eager, onnxruntime, openvino',
                            proc.stderr.strip().splitlines()[-1]), proc.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def deploy_segmentor(tiny):
    _, _, _, deploy_cfg, deploy_ckpt = tiny
    return init_segmentor(deploy_cfg, deploy_ckpt, runtime='eager')


def test_auto_keeps_bf16_when_it_agrees_with_fp32(monkeypatch, tiny):
    """The keep path, on any CPU: the 'bf16' runtime is OpenVINO f32 here, so it agrees with fp32 by construction
    (real bf16 is tested against its own tolerances in test_real_bf16_agrees_with_fp32)."""
    simulate(monkeypatch, AMX)
    monkeypatch.setitem(RUNTIMES, 'openvino_bf16', dataclasses.replace(RUNTIMES['openvino_bf16'],
                                                                       prepare=RUNTIMES['openvino'].prepare))
    image = next((tiny[0] / 'data' / 'leftImg8bit' / 'val').rglob('*.png'))
    lines = []
    model = with_runtime(deploy_segmentor(tiny), 'auto', log=lines.append)
    assert model.runtime == 'openvino_bf16' and lines[0].startswith(
        'runtime auto: openvino_bf16 (bf16) for this AMX CPU; checked against onnxruntime (fp32) on the first input')
    pred = inference(model, str(image))
    assert model.runtime == 'openvino_bf16' and len(lines) == 2
    assert re.fullmatch(r'runtime auto: bf16 kept the fp32 class of 1?\d?\d\.\d\d% of the first input\'s pixels; '
                        r'running openvino_bf16', lines[1])
    assert (pred == inference(deploy_segmentor(tiny), str(image))).mean() >= 0.99


@pytest.mark.skipif(not has_bf16(cpu_flags()), reason='this CPU has no bf16 (the simulated-flag tests cover it)')
def test_real_bf16_agrees_with_fp32(tiny):
    """On a CPU with bf16: OpenVINO really computes in bf16, and keeps what bf16 can promise on the tiny network's
    logits (not random noise: its BN statistics are set). Measured on a 2-vCPU AMD EPYC Zen 4 (avx512_bf16, no amx),
    2026-12-06, this very comparison: max error 0.96% of max |logit|, argmax agreement 99.55%; the bounds leave about
    3x (error) and 6x (disagreeing pixels) of room for other CPUs' kernels."""
    model = SegLogits(deploy_segmentor(tiny)).eval()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 128)
    with torch.inference_mode():
        ref = model(x)
    run = prepare(model, 'openvino_bf16', x)
    assert run.executed_precision == 'bf16'
    out = run(x)
    assert (out - ref).abs().max() <= 3e-2 * ref.abs().max()
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.97


def test_auto_falls_back_to_fp32_when_bf16_disagrees(monkeypatch, tiny):
    """Forced: a 'bf16' network whose logits are negated disagrees on nearly every pixel, so auto runs ONNX Runtime
    fp32 from the first input on and says why in one line."""
    simulate(monkeypatch, AMX)
    spec = RUNTIMES['openvino_bf16']
    monkeypatch.setitem(RUNTIMES, 'openvino_bf16', dataclasses.replace(
        spec, prepare=lambda model, example: (lambda x, run=spec.prepare(model, example): -run(x))))
    image = next((tiny[0] / 'data' / 'leftImg8bit' / 'val').rglob('*.png'))
    lines = []
    model = with_runtime(deploy_segmentor(tiny), 'auto', log=lines.append)
    pred = inference(model, str(image))
    assert model.runtime == 'onnxruntime'
    assert re.fullmatch(r'runtime auto: bf16 kept the fp32 class of only \d?\d\.\d\d% of the first input\'s pixels '
                        r'\(< 99%\); running onnxruntime \(fp32\) instead', lines[1]), lines
    expected = inference(with_runtime(deploy_segmentor(tiny), 'onnxruntime'), str(image))
    assert (pred == expected).all()
    inference(model, str(image))  # later inputs: no second check, no second line
    assert len(lines) == 2


def test_infer_without_runtime_prints_the_choice_and_matches_it(tiny, tmp_path):
    """tools/infer.py on this machine's real flags: the line names the runtime auto chose, and the masks equal those
    of the runtime it ran (the choice, or its fp32 fallback where bf16 disagreed on the first input) named
    explicitly."""
    root, _, _, deploy_cfg, deploy_ckpt = tiny
    images = root / 'data' / 'leftImg8bit' / 'val'
    choice = choose_runtime('deploy')
    proc = run_tool('infer.py', deploy_cfg, deploy_ckpt, images, '--out-dir', tmp_path / 'auto')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert choice.line() in proc.stdout + proc.stderr
    ran = re.findall(r'; running (\w+)', proc.stdout + proc.stderr)
    ran = ran[-1] if ran else choice.runtime
    assert ran in (choice.runtime, choice.fallback)
    proc = run_tool('infer.py', deploy_cfg, deploy_ckpt, images, '--out-dir', tmp_path / 'named', '--runtime', ran)
    assert proc.returncode == 0 and 'runtime auto' not in proc.stdout + proc.stderr
    masks = sorted((tmp_path / 'auto').rglob('*_trainIds.png'))
    assert len(masks) == 2
    for mask in masks:
        named = tmp_path / 'named' / mask.relative_to(tmp_path / 'auto')
        assert (cv2.imread(str(mask)) == cv2.imread(str(named))).all()


def test_bf16_folder_through_tools_test(monkeypatch, tiny, tmp_path):
    """tools/quantize.py --precision bf16 on a (simulated) AMX CPU writes the bf16 folder; its report names the
    precision OpenVINO really ran, and tools/test.py on the folder prints the report's bf16 figures."""
    simulate(monkeypatch, AMX)
    root, config, checkpoint, _, _ = tiny
    out = tmp_path / 'bf16'
    proc = run_tool('quantize.py', config, checkpoint, '--out-dir', out, '--precision', 'bf16')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ['bf16.bin', 'bf16.pth', 'bf16.xml', 'bf16_config.py',
                                                     'quantization.json']
    report = json.loads((out / 'quantization.json').read_text())
    assert (report['precision'], report['method'], report['int8']) == ('bf16', 'cast', None)
    assert report['drop'] == pytest.approx(report['fp32']['mIoU'] - report['bf16']['mIoU'], abs=0.011)
    assert report['speed']['bf16_ms'] > 0 and report['calibration'] == {}
    example = torch.randn(1, 3, 64, 64)
    ran = OpenVINONetwork(convert_module(torch.nn.Conv2d(3, 2, 3).eval(), example), precision='bf16')
    assert report['backend']['executed_precision'] == ran.executed_precision  # 'f32' on a CPU without bf16
    miou, m_acc, a_acc = tools_test_metrics(out / 'bf16_config.py', out / 'bf16.pth', tmp_path / 'work')
    assert (miou, m_acc, a_acc) == pytest.approx(
        (report['bf16']['mIoU'], report['bf16']['mAcc'], report['bf16']['aAcc']), abs=0.011)
    model = init_segmentor(out / 'bf16_config.py', out / 'bf16.pth', runtime='eager')
    assert model.form == 'bf16' and copy.deepcopy(model).form == 'bf16'


def test_docs_name_the_runtime_the_table_picks():
    """docs/benchmark.md's table of auto's choices says what AUTO_TABLE does, class for class."""
    section = (REPO / 'docs' / 'benchmark.md').read_text().split('## Which runtime `auto` picks')[1].split('\n## ')[0]
    rows = [[cell.strip() for cell in line.strip().strip('|').split('|')] for line in section.splitlines()
            if line.startswith('| ') and not line.startswith('| CPU class')]
    for klass, row in AUTO_TABLE.items():
        [doc] = [cells for cells in rows if any(part.strip() == klass or part.strip().startswith(klass + ' (')
                                                for part in cells[0].split(','))]
        assert doc[2].startswith(f'`{row.runtimes[0]}`'), (klass, doc)


def test_tools_test_names_the_runtime_and_precision(tiny, tmp_path):
    """tools/test.py by default (native): the float deploy model's own precision, on this CPU's fastest fp32 runtime;
    the printed results and the saved JSON name both."""
    _, _, _, deploy_cfg, deploy_ckpt = tiny
    proc = run_tool('test.py', deploy_cfg, deploy_ckpt, '--work-dir', tmp_path / 'work')
    assert proc.returncode == 0, proc.stderr[-3000:]
    native = choose_runtime('deploy', policy='native')
    assert native.precision == 'fp32'
    text = proc.stdout + proc.stderr
    assert native.line() in text
    assert f'the figures above were computed by runtime {native.runtime} in fp32' in text
    [saved] = [json.loads(line) for log in (tmp_path / 'work').rglob('*.json') for line in log.read_text().splitlines()
               if '"mIoU"' in line]
    assert (saved['runtime'], saved['precision']) == (native.runtime, 'fp32') and saved['mIoU'] >= 0

"""Quantization-aware training: tools/train.py on a QAT config fine-tunes a tiny trained RepVGG PSPNet with NNCF fake
quantizers for a few iterations and ends in the int8 folder of tools/quantize.py, which tools/test.py runs."""
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO, TINY_LAYERS, make_tiny, run_tool_in_process, tools_test_metrics
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from repseg.apis import read_checkpoint
from repseg.models import SegLogits
from repseg.quantization.qat import QATEncoderDecoder, float_reference
from repseg.quantization.report import SCHEMA_VERSION, load_report
from repseg.utils import compare_logits

pytest.importorskip('nncf')
pytest.importorskip('openvino')

QAT = """_base_ = ['./tiny.py']
custom_imports = dict(imports=['repseg', 'repseg.quantization.qat'], allow_failed_imports=False)
model = dict(_delete_=True, type='QATEncoderDecoder', float_config='{{{{ fileDirname }}}}/tiny.py',
             checkpoint='{checkpoint}', num_calib=2)
max_iters = 3
optim_wrapper = dict(optimizer=dict(lr=0.001))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters), logger=dict(interval=1))
custom_hooks = [dict(type='QATExportHook', out_dir='int8')]
"""


def run_tool(tool: str, *args: str) -> SimpleNamespace:
    return run_tool_in_process(Path(tool).name, *args, cwd=REPO)


def write_qat_config(root: Path, checkpoint: Path) -> Path:
    config = root / 'tiny_qat.py'
    config.write_text(QAT.format(checkpoint=checkpoint))
    return config


@pytest.fixture(scope='module')
def qat_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('qat')
    config, checkpoint = make_tiny(root)
    qat_config = write_qat_config(root, checkpoint)
    work = root / 'work'
    proc = run_tool('tools/train.py', str(qat_config), '--work-dir', str(work))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return root, qat_config, checkpoint, work, proc.stdout + proc.stderr


def test_training_logs_the_losses_and_writes_the_int8_folder(qat_run):
    root, qat_config, checkpoint, work, log = qat_run
    assert len(re.findall(r'Iter\(train\) \[\s*\d/3\].*decode\.loss_ce: [\d.]+.*aux\.loss_ce: [\d.]+', log)) == 3
    out = work / 'int8'
    assert sorted(p.name for p in out.iterdir()) == ['int8.bin', 'int8.pth', 'int8.xml', 'int8_config.py',
                                                     'quantization.json']
    report = json.loads((out / 'quantization.json').read_text())
    assert report['method'] == 'qat' and report['training']['iterations'] == 3
    assert report['checkpoint'] == str(checkpoint) and report['deploy_conversion'][0]['passed']
    assert report['calibration']['images'] == 2 and report['validation']['images'] == 2
    # every weighted layer of the deployed network (backbone + PSP head) runs in int8, nothing left in float
    assert report['layers_int8'] == TINY_LAYERS and report['layers_in_float'] == []
    assert report['weights_bytes']['int8'] < report['weights_bytes']['fp32'] / 3
    assert report['drop'] == pytest.approx(report['fp32']['mIoU'] - report['int8']['mIoU'], abs=0.011)
    assert report['kernel_ranges']['summary']['layers'] == TINY_LAYERS
    parity = report['parity_openvino_int8_vs_fake_quant']
    assert parity['max_abs'] < 0.1 * parity['max_logit'] and parity['agreement'] > 0.8
    assert parity['passed'] is None  # recorded, not judged
    # the same report class as PTQ's, read back with its schema version
    typed = load_report(out)
    assert typed.schema_version == SCHEMA_VERSION and typed.as_dict() == report
    assert typed.training['iterations'] == 3
    assert typed.plain_ptq is None and typed.accuracy_control is None and typed.max_drop is None


def test_int8_folder_runs_in_mmseg_test_path(qat_run):
    root, _, _, work, _ = qat_run
    out = work / 'int8'
    miou, m_acc, a_acc = tools_test_metrics(out / 'int8_config.py', out / 'int8.pth', root / 'test')
    report = json.loads((out / 'quantization.json').read_text())
    assert (miou, m_acc, a_acc) == pytest.approx(
        (report['int8']['mIoU'], report['int8']['mAcc'], report['int8']['aAcc']), abs=0.011)
    assert 'QATExportHook' not in (out / 'int8_config.py').read_text()


def test_checkpoint_holds_trained_weights_and_quantizer_scales(qat_run):
    root, qat_config, _, work, _ = qat_run
    state, _ = read_checkpoint(work / 'iter_3.pth')  # a runner checkpoint, read under weights_only
    scales = [k for k in state if '__nncf_hooks' in k and k.endswith('scale')]
    assert len(scales) >= TINY_LAYERS  # one weight quantizer per layer, plus the activations'
    init_default_scope('mmseg')
    fresh = MODELS.build(Config.fromfile(str(qat_config)).model)
    start = fresh.state_dict()
    assert set(state) == set(start)
    moved = [k for k in state if k.endswith('rbr_reparam.weight') and not torch.equal(state[k], start[k])]
    assert moved, 'the deploy-form weights were not fine-tuned'
    fresh.load_state_dict(state, strict=True)  # a QAT checkpoint loads back into the rebuilt model


def test_fake_quantization_is_active_and_close_to_float(qat_run):
    """Before training, the QAT network is the float deploy network with int8 rounding: close, not equal. The float
    reference is rebuilt from the recorded float config and checkpoint: the QAT model holds no hidden module."""
    _, qat_config, checkpoint, _, _ = qat_run
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(str(qat_config)).model).eval()
    assert isinstance(model, QATEncoderDecoder) and model.source.checkpoint == str(checkpoint)
    assert not [name for name, value in vars(model).items() if isinstance(value, torch.nn.Module)]
    assert {name for name, _ in model.named_children()} == {'data_preprocessor', 'network', 'auxiliary_head'}
    reference = float_reference(model)
    assert reference.conversion == model.source.conversion and reference.conversion[0]['passed']
    x = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = compare_logits('qat vs float', SegLogits(reference.model, resize=False)(x),
                              SegLogits(model, resize=False)(x))
    assert 1e-4 < diff.max_rel < 0.25 and diff.agreement > 0.8, str(diff)


def test_missing_float_checkpoint_is_one_line(tmp_path):
    config, _ = make_tiny(tmp_path)
    qat_config = write_qat_config(tmp_path, tmp_path / 'missing.pth')
    proc = run_tool('tools/train.py', str(qat_config), '--work-dir', str(tmp_path / 'work'))
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert re.search(r'missing\.pth: no such file \(QATEncoderDecoder checkpoint: the trained float model', last), last


def test_quantization_table_prints_the_report(qat_run):
    _, _, _, work, _ = qat_run
    report = json.loads((work / 'int8' / 'quantization.json').read_text())
    proc = run_tool('tools/quantization_table.py', str(work / 'int8'), '--labels', 'tiny')
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith('| tiny |')]
    assert len(rows) == 2  # the accuracy row and the kernel-range row
    cells = [c.strip() for c in rows[0].strip('|').split('|')]
    assert cells[:5] == ['tiny', 'qat', f'{report["fp32"]["mIoU"]:.2f}', f'{report["int8"]["mIoU"]:.2f}',
                         f'{report["drop"]:.2f}']
    summary = report['kernel_ranges']['summary']['int8_error_per_channel']
    assert f'{100 * summary["worst"]:.2f} / {100 * summary["median"]:.2f}' in rows[1]
    combined = run_tool('tools/quantization_table.py', str(work / 'int8'), '--labels', 'tiny', '--combined')
    assert combined.returncode == 0, combined.stderr[-2000:]
    one = [[c.strip() for c in line.strip('|').split('|')] for line in combined.stdout.splitlines()
           if line.startswith('| tiny |')]
    assert len(one) == 1 and one[0][:6] == cells[:6]  # one row: the accuracy cells, then the kernel figures
    assert one[0][-1] == f'{100 * summary["worst"]:.2f} / {100 * summary["median"]:.2f}'
    bad = run_tool('tools/quantization_table.py', str(work / 'int8'), '--labels', 'a', 'b')
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
        'error: --labels: 2 label(s) for 1 report(s); expected one each')

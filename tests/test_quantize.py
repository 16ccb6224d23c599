"""tools/quantize.py end to end on a tiny RepVGG PSPNet and generated scenes, its report read back as a
``QuantizationReport``, the int8 folder in tools/test.py, the refusal path, and the kernel range diagnostics on
hand-built kernels."""
import json
import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from conftest import (REPO, SAMPLE_CONFIG, TINY, TINY_LAYERS, make_tiny, randomize_bn, run_tool_in_process,
                      tools_test_metrics)
from mmengine.config import Config
from mmseg.registry import MODELS

from repseg.apis import inference, init_segmentor
from repseg.benchmark.suite import plan_jobs
from repseg.benchmark.worker import setup_model
from repseg.datasets import make_sample_dataset
from repseg.models import QARepVGGBlock, RepVGGBlock
from repseg.models.kernel_ranges import kernel_range, kernel_ranges, quantize_symmetric, range_report, summarize
from repseg.quantization.pipeline import quantize_segmentor
from repseg.quantization.report import SCHEMA_VERSION, Metrics, QuantizationReport, load_report
from repseg.utils.io import safe_torch_load

pytest.importorskip('nncf')
pytest.importorskip('openvino')


def run_tool(tool: str, *args: str) -> SimpleNamespace:
    return run_tool_in_process(Path(tool).name, *args, cwd=REPO)


@pytest.fixture(scope='module')
def quantized(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny')
    config, checkpoint = make_tiny(root)
    out = root / 'int8'
    proc = run_tool('tools/quantize.py', str(config), str(checkpoint), '--out-dir', str(out), '--num-calib', '3')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, config, checkpoint, out


def test_folder_and_report(quantized):
    root, config, checkpoint, out = quantized
    assert sorted(p.name for p in out.iterdir()) == ['int8.bin', 'int8.pth', 'int8.xml', 'int8_config.py',
                                                     'quantization.json']
    report = json.loads((out / 'quantization.json').read_text())
    for form in ('fp32', 'int8'):
        assert set(report[form]) == {'mIoU', 'mAcc', 'aAcc'}
        assert 0 <= report[form]['mIoU'] <= 100
    assert report['drop'] == pytest.approx(report['fp32']['mIoU'] - report['int8']['mIoU'], abs=0.011)
    assert report['method'] in ('ptq', 'accuracy_control') and report['max_drop'] == 1.0
    assert 0 < report['pixel_agreement'] <= 1
    assert report['calibration']['images'] == 3 and report['calibration']['split'] == 'train'
    assert report['validation']['images'] == 2
    assert report['deploy_conversion'][0]['passed']  # the train-form checkpoint went through the converter's proof
    parity = report['parity_openvino_fp32_vs_eager']
    assert parity['passed'] and parity['max_abs'] <= 1e-4 * parity['max_logit']
    assert report['layers_int8'] + len(report['layers_in_float']) == TINY_LAYERS
    assert report['weights_bytes']['int8'] < report['weights_bytes']['fp32'] / 3
    assert report['backend']['openvino'] and report['backend']['nncf']
    assert report['cpu']['int8'] in ('AMX', 'AVX-512 VNNI', 'AVX-VNNI', 'AVX2 only', 'no AVX2', 'unknown')
    assert report['kernel_ranges']['summary']['layers'] == TINY_LAYERS
    assert len(report['kernel_ranges']['branches']) == 7
    # the IR files are the ones inside the checkpoint, which loads under weights_only
    state = safe_torch_load(out / 'int8.pth')['state_dict']
    assert state['network.xml'].numpy().tobytes() == (out / 'int8.xml').read_bytes()
    assert state['network.weights'].numpy().tobytes() == (out / 'int8.bin').read_bytes()


def test_report_loads_back_as_the_dataclass(quantized):
    """quantization.json is a QuantizationReport of this schema version, read back field for field, and the
    checkpoint's meta carries its summary."""
    _, config, checkpoint, out = quantized
    report = load_report(out)
    assert isinstance(report, QuantizationReport) and report.schema_version == SCHEMA_VERSION
    raw = json.loads((out / 'quantization.json').read_text())
    assert raw['schema_version'] == SCHEMA_VERSION and report.as_dict() == raw
    assert (report.config, report.checkpoint) == (str(config), str(checkpoint))
    assert isinstance(report.int8, Metrics) and report.int8.mIoU == raw['int8']['mIoU']
    assert report.plain_ptq is not None and report.training is None
    if report.method == 'ptq':  # the written model is the plain PTQ one
        assert report.accuracy_control is None and report.plain_ptq['int8'] == raw['int8']
    else:
        assert report.accuracy_control['int8'] == raw['int8'] and report.accuracy_control['ranking_subset'] == 2
    meta = safe_torch_load(out / 'int8.pth')['meta']
    assert meta['quantization'] == report.summary() and meta['quantization']['schema_version'] == SCHEMA_VERSION


def test_int8_config_runs_in_mmseg_test_path(quantized):
    """tools/test.py on the written folder gives the int8 mIoU that quantize.py reported."""
    root, _, _, out = quantized
    miou, m_acc, a_acc = tools_test_metrics(out / 'int8_config.py', out / 'int8.pth', root / 'work')
    report = json.loads((out / 'quantization.json').read_text())
    assert (miou, m_acc, a_acc) == pytest.approx(
        (report['int8']['mIoU'], report['int8']['mAcc'], report['int8']['aAcc']), abs=0.011)


def test_int8_model_through_the_inference_api(quantized):
    root, config, checkpoint, out = quantized
    image = next((root / 'data' / 'leftImg8bit' / 'val').rglob('*.png'))
    model = init_segmentor(out / 'int8_config.py', out / 'int8.pth')
    pred = inference(model, str(image))
    assert pred.shape == cv2.imread(str(image)).shape[:2] and pred.max() < 19
    # the same argmax as fp32 on most pixels (the report's agreement is over the same validation images)
    fp32 = inference(init_segmentor(config, checkpoint), str(image))
    assert (pred == fp32).mean() > 0.5


def test_checkpoint_of_another_ir_is_refused(quantized):
    _, _, _, out = quantized
    state = safe_torch_load(out / 'int8.pth')['state_dict']
    state['network.weights'] = state['network.weights'].clone()
    state['network.weights'][-1] ^= 1
    model = MODELS.build(Config.fromfile(str(out / 'int8_config.py')).model)
    with pytest.raises(ValueError, match='is not the one this config was written for'):  # at load: nothing runs
        model.load_state_dict(state, strict=True)


@pytest.mark.parametrize('edit, message', [
    (dict(num_classes=7), r'model.num_classes=7 does not fit model.out_channels=19'),
    (dict(num_classes=7, out_channels=7, ir=dict(sha256='')), r'the config says 7 output channels .* its IR has 19')])
def test_int8_config_must_describe_its_ir(quantized, edit, message):
    """An edited int8_config.py is refused before anything is evaluated: classes that do not fit the IR's
    channels at build time, the channels themselves when the IR is loaded."""
    _, _, _, out = quantized
    cfg = Config.fromfile(str(out / 'int8_config.py'))
    cfg.merge_from_dict({f'model.{k}': v for k, v in edit.items()})
    with pytest.raises(ValueError, match=message):
        MODELS.build(cfg.model).load_state_dict(safe_torch_load(out / 'int8.pth')['state_dict'], strict=True)


def test_refusal_writes_nothing(quantized, tmp_path):
    """Labels replaced by the fp32 model's own predictions (fp32 mIoU 100 but for near-ties of this random model): with
    --max-drop 0 and one accuracy-control step the int8 model cannot fit, so the tool exits 2 with one line naming
    both mIoUs and writes nothing."""
    root, config, checkpoint, _ = quantized
    data = tmp_path / 'data'
    make_sample_dataset(data, num_train=4, num_val=2, size=(128, 64), seed=0)
    model = init_segmentor(config, checkpoint)
    for image in (data / 'leftImg8bit' / 'val').rglob('*_leftImg8bit.png'):
        label = Path(str(image).replace('leftImg8bit', 'gtFine', 1).replace('_leftImg8bit', '_gtFine_labelTrainIds'))
        assert label.is_file()
        cv2.imwrite(str(label), inference(model, str(image)))
    relabelled = tmp_path / 'relabelled.py'
    relabelled.write_text(TINY.format(base=SAMPLE_CONFIG, data=data))
    out = tmp_path / 'refused' / 'int8'
    proc = run_tool('tools/quantize.py', str(relabelled), str(checkpoint), '--out-dir', str(out), '--num-calib', '2',
                    '--max-drop', '0', '--max-iterations', '1', '--ranking-subset', '1')
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    found = re.fullmatch(r'error: .*: int8 mIoU ([\d.]+) vs fp32 mIoU ([\d.]+) \(drop ([\d.]+) > --max-drop 0\) '
                         r'even with 1 layer\(s\) kept in float; nothing written', last)
    assert found, last
    int8, fp32, drop = map(float, found.groups())
    assert fp32 >= 99.9 and drop == pytest.approx(fp32 - int8, abs=0.011) and drop > 0
    assert not (tmp_path / 'refused').exists()


def test_bad_input_is_refused_before_any_work(quantized, tmp_path):
    _, config, checkpoint, out = quantized
    with pytest.raises(FileExistsError, match=r'holds an earlier result \(int8.bin, int8.pth, int8.xml, '
                                              r'int8_config.py \(\+1 more\)\); choose another out-dir, or pass '
                                              r'--force'):
        quantize_segmentor(config, checkpoint, out)
    with pytest.raises(FileNotFoundError, match='none.py: no such config file'):
        quantize_segmentor(tmp_path / 'none.py', checkpoint, tmp_path / 'o')
    with pytest.raises(ValueError, match='--max-drop -1.0: expected a non-negative'):
        quantize_segmentor(config, checkpoint, tmp_path / 'o', max_drop=-1.0)
    with pytest.raises(ValueError, match='--ranking-subset 0: expected at least 1 validation image'):
        quantize_segmentor(config, checkpoint, tmp_path / 'o', ranking_subset=0)
    assert not (tmp_path / 'o').exists()


def test_symmetric_quantizer_exact_values():
    w = torch.tensor([[1.0, -0.5, 0.26], [0.02, 0.01, -0.003]])
    per_tensor = quantize_symmetric(w, per_channel=False)
    assert torch.allclose(per_tensor, torch.round(w * 127) / 127)
    per_channel = quantize_symmetric(w, per_channel=True)
    assert torch.allclose(per_channel[1], torch.round(w[1] / 0.02 * 127) * 0.02 / 127)
    assert per_tensor[1, 2] == 0 and per_channel[1, 2] != 0  # a small channel vanishes under one scale only


def test_diagnostics_find_a_known_outlier():
    gen = torch.Generator().manual_seed(0)
    clean = torch.randn(8, 4, 3, 3, generator=gen)
    outlier = clean.clone()
    outlier[5, 2, 1, 1] = 60.0  # one centre tap, as an identity-branch BN scale puts it
    ranges = kernel_ranges({'clean': clean, 'outlier': outlier})
    ok, bad = ranges
    # 36 taps per channel bound a channel's max/std near sqrt(36); the outlier's channel sits at that bound
    assert bad.channel_max_over_std_worst > 5.5 > 1.5 * ok.channel_max_over_std_worst
    assert bad.max_over_std == pytest.approx(60.0 / outlier.double().std().item(), rel=1e-6)
    assert bad.channel_range_spread > 10 and ok.channel_range_spread < 2
    # per tensor, the outlier's scale (60/127) swamps the other channels; per channel, only its own channel suffers
    assert bad.int8_error_per_tensor > 0.1 > 5 * bad.int8_error_per_channel
    assert ok.int8_error_per_tensor < 0.02 and ok.int8_error_per_channel < 0.02
    summary = summarize(ranges)
    assert summary['int8_error_per_tensor']['worst_layer'] == 'outlier'
    assert summary['channel_max_over_std_worst']['worst_layer'] == 'outlier'
    assert kernel_range('x', clean).shape == [8, 4, 3, 3]


def test_branch_attribution_names_the_identity_bn():
    block = randomize_bn(RepVGGBlock(8, 8)).eval()
    with torch.no_grad():
        block.rbr_identity.running_var[3] = 1e-6  # a near-dead channel after the previous ReLU: a huge BN scale
    report = range_report(torch.nn.Sequential(block))
    assert report['branches'][0]['largest_at_max'] == 'identity'
    assert report['branches'][0]['max_identity'] == pytest.approx(
        float(block.rbr_identity.weight[3].detach() / np.sqrt(1e-6 + block.rbr_identity.eps)), rel=1e-5)
    assert report['summary']['layers'] == 1 and report['layers'][0]['name'] == '0.rbr_reparam'


@pytest.mark.parametrize('block_type', ['repvgg', 'qarepvgg'])
@pytest.mark.parametrize('groups', [1, 2])
def test_branches_sum_to_the_fused_conv(block_type, groups):
    """``branches()`` is a decomposition of the deploy conv: kernels and biases sum to what ``switch_to_deploy``
    writes, for both block types (a QARepVGG block's branches all pass through BN_post), so the diagnostics run on
    either."""
    block = randomize_bn({'repvgg': RepVGGBlock, 'qarepvgg': QARepVGGBlock}[block_type](8, 8, groups=groups)).eval()
    with torch.no_grad():
        parts = block.branches()
    assert set(parts) == {'dense_3x3', '1x1', 'identity'}
    for kernel, bias in parts.values():
        assert kernel.shape == (8, 8 // groups, 3, 3) and bias.shape == (8,)
    report = range_report(torch.nn.Sequential(block))  # on a copy: the block keeps its branches
    if block_type == 'qarepvgg':  # the identity tap is BN_post's scale
        scale = block.bn.weight / (block.bn.running_var + block.bn.eps).sqrt()
        assert report['branches'][0]['max_identity'] == pytest.approx(float(scale.abs().max()), rel=1e-5)
    block.switch_to_deploy()
    fused = block.rbr_reparam
    torch.testing.assert_close(sum(k for k, _ in parts.values()), fused.weight.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(sum(b for _, b in parts.values()), fused.bias.detach(), rtol=0, atol=1e-6)
    assert report['branches'][0]['max_fused'] == pytest.approx(float(fused.weight.abs().max()), rel=1e-6)


def test_benchmark_measures_the_folder(quantized):
    """tools/benchmark.py --configs DIR/int8_config.py: the folder is one 'int8' model run in OpenVINO, and what it
    times is the segmentor's network with the decode head's resize."""
    _, _, _, out = quantized
    config = str(out / 'int8_config.py')
    jobs = [j for j in plan_jobs([config], ['eager', 'onnxruntime'], 'all') if j.kind == 'model']
    assert [(j.form, j.runtime, j.part, j.label) for j in jobs] == [('int8', 'openvino', 'model', 'int8.int8.openvino')]
    job = dict(config=config, form='int8', runtime='openvino', part='model', shape=[64, 96], batch=1, device='cpu',
               seed=0, warmup=1)
    run, x, info = setup_model(job)
    assert info['weight_mb'] == pytest.approx((out / 'int8.bin').stat().st_size / 2**20)
    model = init_segmentor(out / 'int8_config.py', out / 'int8.pth')
    with torch.no_grad():
        ref = model.encode_decode(x, [dict(img_shape=(64, 96), pad_shape=(64, 96))])
        assert torch.equal(run(x), ref)


def test_edited_int8_config_is_one_line_naming_the_file(quantized, tmp_path):
    """Through tools/test.py: the refusal names the edited config, before anything is evaluated or written."""
    _, _, _, out = quantized
    edited = out.parent / 'edited_int8_config.py'
    edited.write_text((out / 'int8_config.py').read_text().replace('num_classes=19', 'num_classes=7'))
    proc = run_tool('tools/test.py', str(edited), str(out / 'int8.pth'), '--work-dir', str(tmp_path / 'wd'))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: {edited}: OpenVINOEncoderDecoder: model.num_classes=7 does not fit model.out_channels=19 (the '
        f'channels of its IR); use the int8_config.py written with this int8.pth, unedited')
    assert not (tmp_path / 'wd').exists()

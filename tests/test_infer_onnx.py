"""Inference API/CLI (colour masks, overlays, trainIds) and ONNX export of the deploy model, checked with
onnxruntime."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DEMO_FRAME, FRAME, REPO, SAMPLE_CONFIG, run_tool_in_process
from mmengine.config import ConfigDict

from repseg.apis import CITYSCAPES_PALETTE, colorize, inference, init_segmentor, overlay, segment
from repseg.deploy import convert_to_deploy, export_onnx
from repseg.models import SegLogits
from repseg.runtime import with_runtime


def onnx_modules():
    """onnx and onnxruntime (the deploy extra), or skip only the ONNX tests."""
    return pytest.importorskip('onnx'), pytest.importorskip('onnxruntime')


@pytest.fixture(scope='module')
def pair(tmp_path_factory, sample_checkpoint):
    """(training checkpoint, deploy dir) of a sample model trained for a few steps."""
    root = tmp_path_factory.mktemp('pair')
    trained = sample_checkpoint
    convert_to_deploy(SAMPLE_CONFIG, trained, root / 'deploy', shape=(128, 256), log=lambda s: None)
    return trained, root / 'deploy'


def test_colorize_and_overlay():
    labels = np.array([[0, 1], [18, 255]], np.uint8)
    color = colorize(labels)
    assert color.shape == (2, 2, 3) and color.dtype == np.uint8
    assert tuple(color[0, 1]) == tuple(CITYSCAPES_PALETTE[1][::-1])  # BGR of sidewalk (244, 35, 232)
    assert tuple(color[1, 1]) == (0, 0, 0)  # ignore
    image = np.full((2, 2, 3), 100, np.uint8)
    assert np.array_equal(overlay(image, labels, opacity=0.0), image)
    assert np.array_equal(overlay(image, labels, opacity=1.0), color)
    with pytest.raises(ValueError, match='differ in size'):
        overlay(image, labels[:1])


def test_inference_api_paths_arrays_and_both_forms(pair):
    trained, deploy = pair
    train_model = init_segmentor(SAMPLE_CONFIG, trained)
    deploy_model = init_segmentor(deploy / 'deploy_config.py', deploy / 'deploy.pth')
    image = cv2.imread(str(FRAME))
    from_path, from_array = inference(deploy_model, FRAME), inference(deploy_model, image)
    assert from_path.shape == image.shape[:2] and from_path.dtype == np.uint8 and from_path.max() < 19
    assert np.array_equal(from_path, from_array)
    assert (inference(train_model, image) == from_array).mean() >= 0.9999
    with pytest.raises(ValueError, match='HxWx3 BGR uint8'):
        inference(deploy_model, image.astype(np.float32))


def test_infer_cli_writes_masks_overlays_and_trainids(pair, tmp_path):
    _, deploy = pair
    out = tmp_path / 'out'
    model = (deploy / 'deploy_config.py', deploy / 'deploy.pth')
    proc = run_tool_in_process('infer.py', *model, FRAME, FRAME.parent, '--out-dir', out, cwd=REPO)
    assert proc.returncode == 2 and 'would both write' in proc.stderr  # the same file twice under one name
    proc = run_tool_in_process('infer.py', *model, FRAME.parent, '--out-dir', out, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stem = out / FRAME.stem
    ids = cv2.imread(f'{stem}_trainIds.png', cv2.IMREAD_UNCHANGED)
    expected = inference(init_segmentor(deploy / 'deploy_config.py', deploy / 'deploy.pth'), FRAME)
    assert np.array_equal(ids, expected)
    assert np.array_equal(cv2.imread(f'{stem}_color.png'), colorize(expected))
    assert cv2.imread(f'{stem}_overlay.png').shape == (128, 256, 3)


def test_fast_runtime_in_inference_matches_eager(pair, tmp_path):
    """The deploy runtime selected in tools/infer.py gives the eager predictions, also through sliding windows."""
    pytest.importorskip('onnxruntime')
    _, deploy = pair
    eager = init_segmentor(deploy / 'deploy_config.py', deploy / 'deploy.pth')
    fast = with_runtime(init_segmentor(deploy / 'deploy_config.py', deploy / 'deploy.pth'), 'onnxruntime')
    image = cv2.imread(str(DEMO_FRAME))[::2, ::2].copy()  # real 512x256 frame
    ref, out = segment(eager, image).seg_logits.data, segment(fast, image).seg_logits.data
    assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()
    assert (ref.argmax(0) == out.argmax(0)).float().mean() >= 0.9999
    for model in (eager, fast):  # sliding 129x129 windows: one ONNX model serves every window of that size
        model.test_cfg = ConfigDict(mode='slide', crop_size=(129, 129), stride=(86, 86))
    slid_ref, slid = segment(eager, image).seg_logits.data, segment(fast, image).seg_logits.data
    assert (slid - slid_ref).abs().max() <= 1e-4 * slid_ref.abs().max()
    with pytest.raises(ValueError, match="runtime 'tensorrt': unknown; expected one of eager"):
        with_runtime(eager, 'tensorrt')
    proc = run_tool_in_process('infer.py', deploy / 'deploy_config.py', deploy / 'deploy.pth', FRAME,
                               '--out-dir', tmp_path / 'o', '--runtime', 'onnxruntime', cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ids = torch.from_numpy(cv2.imread(str(tmp_path / 'o' / f'{FRAME.stem}_trainIds.png'), cv2.IMREAD_UNCHANGED))
    logits = segment(init_segmentor(deploy / 'deploy_config.py', deploy / 'deploy.pth'), FRAME).seg_logits.data
    # a barely trained model has near-tied classes: any pixel that differs must be a tie within the logit tolerance
    chosen = logits.gather(0, ids.long()[None])[0]
    assert (logits.max(0).values - chosen).max() <= 1e-4 * logits.abs().max()


def test_onnx_export_matches_pytorch(pair, tmp_path):
    onnx, ort = onnx_modules()
    _, deploy = pair
    path = tmp_path / 'model.onnx'
    result = export_onnx(deploy / 'deploy_config.py', deploy / 'deploy.pth', path, shape=(128, 256), repeats=2,
                         log=lambda s: None)
    assert result.parity.max_abs <= 1e-4 * result.parity.max_logit and result.parity.agreement >= 0.9999
    assert result.torch_ms > 0 and result.onnx_ms > 0
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta['upsampled'] == 'False' and meta['bgr_to_rgb'] == 'True'
    # re-check from the written file, on another input
    x = torch.randn(1, 3, 128, 256, generator=torch.Generator().manual_seed(1))
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    got = session.run(None, {'input': x.numpy()})[0]
    with torch.no_grad():
        ref = init_segmentor(deploy / 'deploy_config.py', deploy / 'deploy.pth')(x, mode='tensor').numpy()
    assert got.shape == ref.shape == (1, 19, 16, 32)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_upsampled_wrapper_is_the_bilinear_resize():
    class Head(torch.nn.Module):
        align_corners = True

    class Segmentor(torch.nn.Module):
        decode_head = Head()

        def forward(self, x, mode):
            assert mode == 'tensor'
            return x[:, :2, ::8, ::8] * 2

    x = torch.randn(1, 3, 64, 96)
    low = SegLogits(Segmentor(), resize=False)(x)
    assert low.shape == (1, 2, 8, 12)
    up = SegLogits(Segmentor())(x)
    assert torch.equal(up, F.interpolate(low, size=(64, 96), mode='bilinear', align_corners=True))


def test_export_refuses_train_form(pair, tmp_path):
    onnx_modules()
    trained, _ = pair
    with pytest.raises(ValueError, match='convert first'):
        export_onnx(SAMPLE_CONFIG, trained, tmp_path / 'm.onnx', shape=(128, 256), log=lambda s: None)
    assert not (tmp_path / 'm.onnx').exists()

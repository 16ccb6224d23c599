"""The OpenVINO runtime: fp32 parity with eager PyTorch (1e-4 x max|logit|) at any input shape, inside
MMSegmentation's sliding-window test path, pinned precision and threads, IR bytes round trip, CPU features, and the
int8 folder's segmentor (form 'int8') left to its own network."""
import copy

import numpy as np
import pytest
import torch
from conftest import SAMPLE_CONFIG, randomize_bn
from mmengine.config import Config
from mmseg.registry import MODELS

from repseg.apis import inference_pipeline, segment, sync_bn_to_bn
from repseg.models import SegLogits, reparameterize
from repseg.quantization.segmentor import OpenVINOEncoderDecoder, ir_segmentor
from repseg.runtime import prepare, segmentor_form, with_runtime
from repseg.runtime.openvino_runtime import OpenVINONetwork, ir_bytes, read_ir
from repseg.utils.machine import CPU_CLASSES, cpu_isa, int8_class

pytest.importorskip('openvino')

REL_TOL = 1e-4


@pytest.fixture(scope='module')
def segmentor():
    """The sample config's PSPNet-RepVGG-A0 in deploy form, non-trivial BN, sliding 96x96 windows at stride 64."""
    torch.manual_seed(0)
    cfg = Config.fromfile(str(SAMPLE_CONFIG))
    cfg.model.test_cfg = dict(mode='slide', crop_size=(96, 96), stride=(64, 64))
    model = MODELS.build(sync_bn_to_bn(cfg.model))  # a ConfigDict: test_cfg keeps attribute access
    model.init_weights()
    randomize_bn(model).eval()
    model.cfg = cfg
    model.cfg.test_pipeline = inference_pipeline(cfg)
    return reparameterize(model)


@pytest.fixture(scope='module')
def converted(segmentor):
    """The network in the 'openvino' runtime, traced at one shape."""
    network = SegLogits(segmentor).eval()
    return network, prepare(network, 'openvino', torch.randn(1, 3, 129, 257))


def test_fp32_matches_eager_at_any_shape(converted):
    network, run = converted
    gen = torch.Generator().manual_seed(1)
    for shape in ((1, 3, 129, 257), (2, 3, 97, 130), (1, 3, 64, 64)):  # one IR: batch and size are dynamic
        x = torch.randn(*shape, generator=gen)
        with torch.inference_mode():
            ref, out = network(x), run(x)
        assert out.shape == ref.shape
        assert (out - ref).abs().max() <= REL_TOL * ref.abs().max(), shape
        assert ref.abs().max() > 0.1


def test_precision_and_threads_are_pinned(converted):
    _, run = converted
    assert str(run.compiled.get_property('INFERENCE_PRECISION_HINT')) in ('<Type: \'float32\'>', 'f32', 'float32')
    assert int(run.compiled.get_property('INFERENCE_NUM_THREADS')) == torch.get_num_threads()


def test_sliding_windows_in_mmseg_test_path(segmentor):
    """tools/infer.py --runtime openvino: windows, resizing and argmax stay MMSegmentation's."""
    image = np.random.default_rng(0).integers(0, 255, (150, 170, 3), dtype=np.uint8)
    ref = segment(segmentor, image)
    model = with_runtime(copy.deepcopy(segmentor), 'openvino')
    out = segment(model, image)
    diff = (out.seg_logits.data - ref.seg_logits.data).abs().max()
    assert diff <= REL_TOL * ref.seg_logits.data.abs().max()
    assert torch.equal(out.pred_sem_seg.data, ref.pred_sem_seg.data)


def test_with_runtime_refuses_quantizing_runtime(segmentor):
    """int8 needs calibration data and a measured accuracy: tools/quantize.py, not a runtime."""
    with pytest.raises(ValueError, match="runtime 'openvino_int8': unknown; expected one of eager, onnxruntime, "
                                         "openvino"):
        with_runtime(copy.deepcopy(segmentor), 'openvino_int8')


def test_int8_segmentor_runs_in_its_own_network(segmentor):
    """An int8 folder's segmentor declares its form: eager and openvino leave it as it is, onnxruntime is refused."""
    model = ir_segmentor(segmentor)
    assert isinstance(model, OpenVINOEncoderDecoder) and segmentor_form(model) == 'int8'
    encode_decode = model.encode_decode
    for runtime in ('eager', 'openvino'):
        assert with_runtime(model, runtime) is model and model.encode_decode == encode_decode
    with pytest.raises(ValueError, match="runtime 'onnxruntime' does not run int8-form models; choose one of eager, "
                                         "openvino"):
        with_runtime(model, 'onnxruntime')


def test_ir_bytes_round_trip(converted):
    _, run = converted
    x = torch.randn(1, 3, 65, 65)
    model = run.model
    xml, weights = ir_bytes(model)
    assert xml.startswith(b'<?xml') and len(weights) > 4 * 1e6  # fp32 weights, not compressed to fp16
    assert torch.equal(OpenVINONetwork(read_ir(xml, weights))(x), OpenVINONetwork(model)(x))


def test_int8_instruction_set_classes():
    assert int8_class(['sse2', 'avx2', 'fma']) == 'AVX2 only'
    assert int8_class(['avx2', 'avx_vnni']) == 'AVX-VNNI'
    assert int8_class(['avx2', 'avx512f', 'avx512_vnni']) == 'AVX-512 VNNI'
    assert int8_class(['avx2', 'avx512_vnni', 'amx_int8']) == 'AMX'
    assert int8_class(['sse4_2']) == 'no AVX2'
    isa = cpu_isa()
    assert set(isa) == {'int8', 'bf16', 'class', 'flags'} and isa['class'] in CPU_CLASSES and set(isa['flags']) <= {
        'avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_bf16', 'amx_int8'}

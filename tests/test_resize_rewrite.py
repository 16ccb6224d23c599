"""The logits' final bilinear resize as two matrix products (runtime/rewrite.py): PyTorch's interpolation exactly (up,
down, odd factors, both corner conventions), swapped only for a conversion, and what the converted networks compute:
no Resize/Interpolate at the output of an ONNX or OpenVINO segmentor, the same logits as eager."""
import pytest
import torch
from conftest import make_tiny
from torch.nn import functional as F

from repseg.models import SegLogits
from repseg.models.seg_logits import BilinearResize
from repseg.runtime import prepare
from repseg.runtime.rewrite import MatmulBilinearResize, deploy_rewrites, interpolation_matrix

#: (map, output): the 1/8 logits of 512x1024 and of CamVid's 360x480, odd and non-integer factors, downsizing, 1 pixel
SIZES = [((64, 128), (512, 1024)), ((45, 60), (360, 480)), ((7, 9), (20, 13)), ((10, 10), (5, 7)), ((1, 3), (4, 4))]
TOL = 1e-5  # of max |output|: two weighted sums in another order


def near(out: torch.Tensor, ref: torch.Tensor, tol: float = TOL) -> bool:
    return out.shape == ref.shape and bool((out - ref).abs().max() <= tol * ref.abs().max())


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('size, out', SIZES)
def test_matrix_products_equal_pytorch_bilinear(size, out, align_corners):
    torch.manual_seed(0)
    x = torch.randn(2, 19, *size)
    ref = F.interpolate(x, size=out, mode='bilinear', align_corners=align_corners)
    assert near(MatmulBilinearResize(align_corners)(x, out), ref)
    assert near(BilinearResize(align_corners)(x, out), ref)
    rows = interpolation_matrix(size[0], out[0], align_corners)
    # two taps at most per output row, weights summing to one
    assert rows.shape == (out[0], size[0]) and torch.allclose(rows.sum(1), torch.ones(out[0]))
    assert int((rows != 0).sum(1).max()) <= 2


def test_swap_is_temporary(tmp_path):
    """deploy_rewrites swaps SegLogits' resize in place and puts the very same module back, even on error."""
    config, _ = make_tiny(tmp_path)
    from repseg.benchmark import seeded_segmentor
    model = SegLogits(seeded_segmentor(str(config))).eval()
    before = model.upsample
    with deploy_rewrites(model) as swapped:
        assert type(model.upsample) is MatmulBilinearResize and swapped >= 1
    assert model.upsample is before
    with pytest.raises(RuntimeError, match='boom'):
        with deploy_rewrites(model):
            raise RuntimeError('boom')
    assert model.upsample is before


@pytest.fixture(scope='module')
def tiny_logits(tmp_path_factory):
    from repseg.benchmark import seeded_segmentor, to_form
    config, _ = make_tiny(tmp_path_factory.mktemp('tiny'))
    return SegLogits(to_form(seeded_segmentor(str(config)), 'deploy')).eval()


def test_onnx_output_is_a_matmul_and_equals_eager(tiny_logits):
    """The exported graph's output comes from a MatMul (not a Resize), and ONNX Runtime gives eager's logits."""
    pytest.importorskip('onnxruntime')
    import onnx

    from repseg.runtime.onnx import OUTPUT_NAME, onnx_bytes
    x = torch.randn(1, 3, 96, 160)
    graph = onnx.load_from_string(onnx_bytes(tiny_logits, x)).graph
    assert [n.op_type for n in graph.node if OUTPUT_NAME in n.output] == ['MatMul']
    with torch.no_grad():
        ref = tiny_logits(x)
    assert near(prepare(tiny_logits, 'onnxruntime', x)(x), ref, 1e-4)  # the runtimes' fp32 parity tolerance
    assert type(tiny_logits.upsample) is BilinearResize


def test_one_openvino_ir_resizes_every_size(tiny_logits):
    """One IR (N, H, W free) resizes to each input's size: the matrices are built in the graph from the traced sizes."""
    pytest.importorskip('openvino')
    run = prepare(tiny_logits, 'openvino', torch.randn(1, 3, 64, 128))
    result = run.model.get_results()[0].input_value(0).get_node()
    assert result.get_type_name() == 'MatMul'
    for shape in [(64, 128), (96, 160), (72, 104)]:
        x = torch.randn(1, 3, *shape)
        with torch.no_grad():
            ref = tiny_logits(x)
        assert near(run(x), ref, 1e-4), shape

"""PSP's adaptive pooling as two matmuls (runtime/rewrite.py): exact at every map size in eager, ONNX Runtime and
OpenVINO; one OpenVINO IR for all sizes; no adaptive-pool op left in a converted model; the model itself unchanged."""
import pytest
import torch
from conftest import make_tiny
from torch import nn
from torch.nn import functional as F

from repseg.runtime import prepare
from repseg.runtime.rewrite import MatmulAdaptiveAvgPool2d, averaging_matrix, deploy_rewrites

#: PSP's feature maps at inputs 417x545, 513x513, 713x713, 769x769, 512x1024 (output stride 8), plus edge cases:
#: maps smaller than the bins, and maps the bins do not divide.
MAPS = [(53, 69), (65, 65), (90, 90), (97, 97), (64, 128)]
EDGES = [(1, 1), (5, 3), (7, 13)]
BINS = (1, 2, 3, 6)
TOL = 1e-5  # of max |output|: float rounding of a sum taken in another order


class PyramidNet(nn.Module):
    """PSP's pyramid pooling in miniature: pools of bins 1, 2, 3, 6, each through a 1x1 conv, resized, concatenated."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.pools = nn.ModuleList(nn.AdaptiveAvgPool2d(b) for b in BINS)
        self.convs = nn.ModuleList(nn.Conv2d(channels, 4, 1) for _ in BINS)
        self.head = nn.Conv2d(channels + 4 * len(BINS), 5, 3, padding=1)

    def forward(self, x):
        outs = [x] + [F.interpolate(conv(pool(x)), size=x.shape[2:], mode='bilinear', align_corners=False)
                      for pool, conv in zip(self.pools, self.convs)]
        return self.head(torch.cat(outs, 1))


def near(out: torch.Tensor, ref: torch.Tensor, tol: float = TOL) -> bool:
    return out.shape == ref.shape and bool((out - ref).abs().max() <= tol * ref.abs().max())


@pytest.mark.parametrize('size', MAPS + EDGES)
def test_matrices_match_pytorch_pooling(size):
    """Each bin count, each axis: the same windows as PyTorch's floor/ceil bounds, as module and as matrices."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    for bins in BINS:
        ref = F.adaptive_avg_pool2d(x, bins)
        assert near(MatmulAdaptiveAvgPool2d(bins)(x), ref)
        rows = averaging_matrix(size[0], bins)
        assert rows.shape == (bins, size[0]) and torch.allclose(rows.sum(1), torch.ones(bins))
    # (None, k) keeps an axis, as nn.AdaptiveAvgPool2d does
    assert near(MatmulAdaptiveAvgPool2d((None, 2))(x), F.adaptive_avg_pool2d(x, (None, 2)))


def test_swap_is_temporary_and_counts():
    """deploy_rewrites swaps every nn.AdaptiveAvgPool2d in place and puts the very same modules back, even on error."""
    model = PyramidNet().eval()
    before = list(model.pools)
    with deploy_rewrites(model) as swapped:
        assert swapped == len(BINS) and all(type(p) is MatmulAdaptiveAvgPool2d for p in model.pools)
        with deploy_rewrites(model) as again:
            assert again == 0  # nothing swapped twice
    assert all(a is b for a, b in zip(model.pools, before))
    with pytest.raises(RuntimeError, match='boom'):
        with deploy_rewrites(model):
            raise RuntimeError('boom')
    assert all(a is b for a, b in zip(model.pools, before))


@pytest.mark.parametrize('size', MAPS)
def test_eager_and_onnxruntime_exact(size):
    """Eager with the swap, and the ONNX export (at each size) in ONNX Runtime, equal the model's own pooling."""
    torch.manual_seed(0)
    model, x = PyramidNet().eval(), torch.randn(1, 8, *size)
    with torch.no_grad():
        ref = model(x)
        with deploy_rewrites(model):
            assert near(model(x), ref)
    run = prepare(model, 'onnxruntime', x)
    assert near(run(x), ref)
    assert all(type(p) is nn.AdaptiveAvgPool2d for p in model.pools)


def test_one_openvino_ir_for_every_size():
    """One IR converted at 65x65 runs every size exactly (the averaging matrices are built in the graph) and holds no
    AdaptiveAvgPool op: OpenVINO runs that on a reference kernel."""
    pytest.importorskip('openvino')
    torch.manual_seed(0)
    model = PyramidNet().eval()
    run = prepare(model, 'openvino', torch.randn(1, 8, 65, 65))
    ops = {op.get_type_name() for op in run.model.get_ordered_ops()}
    assert 'MatMul' in ops and not any('AdaptiveAvgPool' in op for op in ops), sorted(ops)
    for size in MAPS + EDGES:
        x = torch.randn(1, 8, *size)
        with torch.no_grad():
            ref = model(x)
        assert near(run(x), ref), size


def test_psp_segmentor_in_openvino(tmp_path):
    """A real MMSegmentation PSPHead (deploy RepVGG, tiny) at an input whose map the bins do not divide (417x545):
    OpenVINO's logits equal eager's, and the compiled network has no adaptive-pool layer."""
    pytest.importorskip('openvino')
    from repseg.benchmark import seeded_segmentor, to_form
    from repseg.models import SegLogits
    config, _ = make_tiny(tmp_path)
    model = SegLogits(to_form(seeded_segmentor(str(config)), 'deploy')).eval()
    x = torch.randn(1, 3, 417, 545)
    with torch.no_grad():
        ref = model(x)
    run = prepare(model, 'openvino', x)
    assert near(run(x), ref, 1e-4)  # the runtimes' fp32 parity tolerance
    layers = {layer.get_type_name() for layer in run.compiled.get_runtime_model().get_ordered_ops()}
    assert not any('AdaptiveAvgPool' in layer for layer in layers), sorted(layers)

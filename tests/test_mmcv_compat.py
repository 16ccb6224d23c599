"""The mmcv-lite compatibility layer: stand-in ops against reference computations, and its activation rules."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from repseg import mmcv_compat


def test_mmseg_models_import_and_shim_state():
    import mmcv
    import mmseg.models  # noqa: F401  (fails without the layer on mmcv-lite)
    assert mmcv_compat.ACTIVE == (not mmcv_compat.has_compiled_mmcv())
    if mmcv_compat.ACTIVE:
        assert mmcv.ops.point_sample is mmcv_compat.point_sample


@pytest.mark.skipif(mmcv_compat.has_compiled_mmcv(), reason='compiled mmcv present: the layer is inactive')
def test_other_ops_raise_module_not_found_naming_the_op():
    from mmcv import ops
    match = r'mmcv\.ops\.CrissCrossAttention needs compiled mmcv ops.*mmcv==2\.1\.0'
    with pytest.raises(ModuleNotFoundError, match=match):
        ops.CrissCrossAttention
    # MMSegmentation's own guards keep working: the head imports, with the op set to None
    from mmseg.models.decode_heads import cc_head, psa_head
    assert cc_head.CrissCrossAttention is None and psa_head.PSAMask is None


def test_inactive_when_compiled_mmcv_present():
    """With a compiled ``mmcv._ext`` findable, ``install()`` registers nothing (run standalone in a fresh process:
    importing all of repseg would pull in mmcv's real ops against the fake extension)."""
    code = ('import sys, types, importlib.util as u, importlib.machinery as m; '
            'ext = types.ModuleType("mmcv._ext"); ext.__spec__ = m.ModuleSpec("mmcv._ext", None); '
            'sys.modules["mmcv._ext"] = ext; '
            f'spec = u.spec_from_file_location("compat", {mmcv_compat.__file__!r}); '
            'mod = u.module_from_spec(spec); spec.loader.exec_module(mod); '
            'print(mod.has_compiled_mmcv(), mod.install(), mod.ACTIVE, "mmcv.ops" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ['True', 'False', 'False', 'False']


def bilinear_reference(img: np.ndarray, x: float, y: float) -> np.ndarray:
    """Bilinear sample of (C, H, W) at pixel coordinates (x, y) with zero padding outside."""
    c, h, w = img.shape
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    out = np.zeros(c)
    for yy, xx, wgt in ((y0, x0, (x0 + 1 - x) * (y0 + 1 - y)), (y0, x0 + 1, (x - x0) * (y0 + 1 - y)),
                        (y0 + 1, x0, (x0 + 1 - x) * (y - y0)), (y0 + 1, x0 + 1, (x - x0) * (y - y0))):
        if 0 <= yy < h and 0 <= xx < w:
            out += wgt * img[:, yy, xx]
    return out


@pytest.mark.parametrize('align_corners', [False, True])
def test_point_sample_matches_bilinear_reference(align_corners):
    torch.manual_seed(0)
    feats = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    points = torch.rand(2, 11, 2, dtype=torch.float64) * 1.2 - 0.1  # some points just outside the map
    out = mmcv_compat.point_sample(feats, points, align_corners=align_corners)
    assert out.shape == (2, 3, 11)
    h, w = feats.shape[2:]
    for n in range(2):
        for p in range(11):
            px, py = points[n, p].tolist()
            if align_corners:
                x, y = px * (w - 1), py * (h - 1)
            else:
                x, y = px * w - 0.5, py * h - 0.5
            np.testing.assert_allclose(out[n, :, p].numpy(), bilinear_reference(feats[n].numpy(), x, y), atol=1e-10)
    grid_out = mmcv_compat.point_sample(feats, points.view(2, 11, 1, 2), align_corners=align_corners)
    assert grid_out.shape == (2, 3, 11, 1) and torch.equal(grid_out[..., 0], out)


def focal_reference(logits: np.ndarray, target: np.ndarray, gamma: float, alpha: float, weight) -> np.ndarray:
    """Element-wise focal loss as written in mmcv's CPU/CUDA kernels."""
    n, c = logits.shape
    loss = np.zeros((n, c))
    for i in range(n):
        for j in range(c):
            p = 1 / (1 + np.exp(-logits[i, j]))
            if target[i] == j:
                loss[i, j] = -alpha * (1 - p) ** gamma * np.log(p)
            else:
                loss[i, j] = -(1 - alpha) * p ** gamma * np.log(1 - p)
            if weight is not None and 0 <= target[i] < c:
                loss[i, j] *= weight[target[i]]
    return loss


@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
@pytest.mark.parametrize('with_weight', [False, True])
def test_sigmoid_focal_loss_matches_reference(reduction, with_weight):
    torch.manual_seed(0)
    logits = torch.randn(13, 5, dtype=torch.float64) * 3
    target = torch.randint(0, 6, (13,))  # 5 = background (no positive class)
    weight = torch.rand(5, dtype=torch.float64) + 0.5 if with_weight else None
    out = mmcv_compat.sigmoid_focal_loss(logits, target, 2.0, 0.25, weight, reduction)
    ref = focal_reference(logits.numpy(), target.numpy(), 2.0, 0.25, None if weight is None else weight.numpy())
    expected = {'none': ref, 'mean': ref.sum() / 13, 'sum': ref.sum()}[reduction]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10)


def test_a_compiled_mmcv_built_for_another_torch_is_set_aside_with_a_warning(tmp_path):
    """``mmcv/_ext`` present but failing to load (an undefined symbol: mmcv compiled for another torch): ``import
    repseg`` and MMSegmentation's models still import, on the stand-in ops, and a warning names the cause."""
    (tmp_path / '_ext.py').write_text('raise ImportError("_ext.so: undefined symbol: _ZN3c104cuda9SetDeviceEi")\n')
    code = ('import warnings, mmcv; warnings.simplefilter("always"); '
            f'mmcv.__path__.append({str(tmp_path)!r}); '
            'import repseg, mmseg.models; from repseg import mmcv_compat; '
            'print("ACTIVE", mmcv_compat.ACTIVE)')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ['ACTIVE', 'True']
    assert "mmcv's compiled ops do not load with torch" in proc.stderr
    assert 'undefined symbol: _ZN3c104cuda9SetDeviceEi' in proc.stderr

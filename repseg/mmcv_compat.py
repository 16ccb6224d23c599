"""Make MMSegmentation 1.x importable on mmcv-lite (mmcv without compiled ops).

mmcv-lite ships ``mmcv.ops``'s sources but not the compiled ``mmcv._ext``, and four MMSegmentation modules import
``mmcv.ops`` unguarded, which breaks ``import mmseg.models`` although PSPNet needs no compiled op. Unless
``mmcv._ext`` loads, ``install()`` (run by ``import repseg``, before mmseg) registers a stand-in ``mmcv.ops`` with
pure-PyTorch ``point_sample`` and ``sigmoid_focal_loss`` (the two ops imported unguarded); every other op raises
``ModuleNotFoundError`` naming it, which keeps MMSegmentation's own ``except ModuleNotFoundError`` guards working.
"""
import importlib
import importlib.util
import sys
import types
import warnings
from typing import Optional

import torch
import torch.nn.functional as F

FULL_MMCV_HINT = ('install full mmcv with compiled ops: '
                  '`MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0` (a source build, ~30 min on CPU)')

#: True once the stand-in ``mmcv.ops`` is registered in ``sys.modules``.
ACTIVE = False


def has_compiled_mmcv() -> bool:
    """Whether mmcv's compiled extension loads. Its mere presence is not enough: an mmcv built for another torch
    fails with an undefined symbol, and is then set aside, with a warning, as if it were mmcv-lite."""
    try:
        if importlib.util.find_spec('mmcv._ext') is None:
            return False
    except (ImportError, ValueError):
        return False
    try:
        importlib.import_module('mmcv._ext')
    except (ImportError, OSError) as err:
        warnings.warn(f'mmcv\'s compiled ops do not load with torch {torch.__version__} '
                      f'({" ".join(str(err).split())[:200]}); RepSeg uses its mmcv-lite layer instead (PSPNet needs no '
                      f'compiled op). To use them, rebuild mmcv for this torch', RuntimeWarning, stacklevel=2)
        return False
    return True


def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False,
                 **kwargs) -> torch.Tensor:
    """``mmcv.ops.point_sample``: ``input`` (N, C, H, W) sampled at normalized points in [0, 1]^2, shape (N, P, 2)
    or (N, Hg, Wg, 2); returns (N, C, P) or (N, C, Hg, Wg)."""
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


def sigmoid_focal_loss(input: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25,
                       weight: Optional[torch.Tensor] = None, reduction: str = 'mean') -> torch.Tensor:
    """``mmcv.ops.sigmoid_focal_loss``: ``input`` (N, C) logits, ``target`` (N,) class indices (outside [0, C): no
    positive class), ``weight`` an optional per-class weight indexed by the target; 'mean' divides the sum by N."""
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(f"sigmoid_focal_loss: reduction={reduction!r}; expected 'none', 'mean' or 'sum'")
    num_classes = input.size(1)
    classes = torch.arange(num_classes, device=input.device)
    positive = (target.long().unsqueeze(1) == classes.unsqueeze(0)).to(input.dtype)
    prob = input.sigmoid()
    # log(sigmoid(x)) and log(1 - sigmoid(x)) computed stably
    pos_term = -alpha * (1 - prob).pow(gamma) * F.logsigmoid(input)
    neg_term = -(1 - alpha) * prob.pow(gamma) * F.logsigmoid(-input)
    loss = positive * pos_term + (1 - positive) * neg_term
    if weight is not None and weight.numel() > 0:
        valid = (target >= 0) & (target < num_classes)
        sample_weight = torch.where(valid, weight[target.clamp(0, num_classes - 1)], torch.ones_like(weight[:1]))
        loss = loss * sample_weight.unsqueeze(1)
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


class _LiteOps(types.ModuleType):
    """Stand-in for ``mmcv.ops``: the pure-PyTorch ops above; every other name is a clear ModuleNotFoundError."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        raise ModuleNotFoundError(f'mmcv.ops.{name} needs compiled mmcv ops, which mmcv-lite lacks; {FULL_MMCV_HINT}',
                                  name=f'mmcv.ops.{name}')


def install() -> bool:
    """Register the stand-in ``mmcv.ops`` unless compiled mmcv exists. Returns whether the stand-in is active."""
    global ACTIVE
    if ACTIVE:
        return True
    if has_compiled_mmcv():
        return False
    import mmcv

    # mmcv.cnn warns at import that MultiScaleDeformableAttention is missing: expected on mmcv-lite, not news.
    warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    ops = _LiteOps('mmcv.ops', __doc__)
    ops.point_sample = point_sample
    ops.sigmoid_focal_loss = sigmoid_focal_loss
    ops.__file__ = __file__
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops
    ACTIVE = True
    return True

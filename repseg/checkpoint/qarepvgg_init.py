"""Start a QARepVGG backbone from standard RepVGG weights so that, in eval mode, it computes the same function.

ImageNet weights exist only for the standard block (QARepVGG has no release). Per block, in eval mode, the standard
block's pre-activation is BN3(W3 x) + s1 W1 x + b1 + sid x + bid (s, b: each BN's scale and shift); QARepVGG's is
BN_post(BN3'(W3 x) + W1' x + x), BN_post an affine map sp z + bp. Matching the coefficient of x gives sp = sid
(1 without an identity), and then every other branch is divided by sp:

    BN3' = BN3 / sp          (gamma and beta divided by sp, running statistics and W3 unchanged)
    W1'  = W1 * s1 / sp      (the 1x1 BN's scale moved into the kernel)
    bp   = b1 + bid          (the 1x1 and identity BNs' shifts moved into BN_post)

BN_post's gamma and beta solve for sp and bp exactly; its running statistics are its input's mean and variance
predicted from the source BNs' (they only shape the first train-mode steps). Where |sid| < MIN_IDENTITY_SCALE, sp
is clamped to +-MIN_IDENTITY_SCALE: that channel differs by at most 2 * MIN_IDENTITY_SCALE * |x| (logged).
"""
import logging
from typing import Dict, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from ..models.backbones import QARepVGGBlock
from ..models.utils import scale_shift
from ..utils.io import CheckpointError

MIN_IDENTITY_SCALE = 1e-4
_BN_LEAVES = ('weight', 'bias', 'running_mean', 'running_var')


def _bn(params: Dict[str, Tensor], prefix: str, eps: float) -> Tuple[Tensor, ...]:
    """(gamma, beta, mean, var, scale, shift) of a BN stored under ``prefix``, in float64."""
    gamma, beta, mean, var = (params[f'{prefix}{leaf}'].double() for leaf in _BN_LEAVES)
    return (gamma, beta, mean, var, *scale_shift(gamma, beta, mean, var, eps))


def qarepvgg_block_tensors(params: Dict[str, Tensor], eps: float,
                           min_scale: float = MIN_IDENTITY_SCALE) -> Tuple[Dict[str, Tensor], int]:
    """A standard train-form block's tensors (block-relative keys) -> QARepVGG ones, and the clamped channel count."""
    dtype = params['rbr_dense.conv.weight'].dtype
    g3, beta3, m3, v3, s3, _ = _bn(params, 'rbr_dense.bn.', eps)
    _, _, m1, v1, s1, b1 = _bn(params, 'rbr_1x1.bn.', eps)
    clamped = 0
    if 'rbr_identity.weight' in params:
        _, _, mid, vid, sid, bid = _bn(params, 'rbr_identity.', eps)
        small = sid.abs() < min_scale
        clamped = int(small.sum())
        sign = torch.where(sid < 0, -1.0, 1.0).to(sid)
        sp = torch.where(small, sign * min_scale, sid)
    else:
        mid = vid = bid = torch.zeros_like(s3)
        sp = torch.ones_like(s3)
    mean_p = beta3 / sp + s1 / sp * m1 + mid
    var_p = (s3 / sp) ** 2 * v3 + (s1 / sp) ** 2 * v1 + vid
    branches = ('rbr_dense.', 'rbr_1x1.', 'rbr_identity.')
    out = {key: value for key, value in params.items() if not key.startswith(branches)}
    new = {
        'rbr_dense.conv.weight': params['rbr_dense.conv.weight'],
        'rbr_dense.bn.weight': g3 / sp, 'rbr_dense.bn.bias': beta3 / sp,
        'rbr_dense.bn.running_mean': m3, 'rbr_dense.bn.running_var': v3,
        'rbr_1x1.weight': params['rbr_1x1.conv.weight'].double() * (s1 / sp).reshape(-1, 1, 1, 1),
        'bn.weight': sp * (var_p + eps).sqrt(), 'bn.bias': b1 + bid + mean_p * sp,
        'bn.running_mean': mean_p, 'bn.running_var': var_p,
    }
    out.update({key: value.to(dtype) for key, value in new.items()})
    if 'rbr_dense.bn.num_batches_tracked' in params:
        out['rbr_dense.bn.num_batches_tracked'] = params['rbr_dense.bn.num_batches_tracked']
        out['bn.num_batches_tracked'] = params['rbr_dense.bn.num_batches_tracked'].clone()
    return out, clamped


def to_qarepvgg_state(backbone: nn.Module, state: Dict[str, Tensor], source: str) -> Dict[str, Tensor]:
    """``state`` with the standard weights of ``backbone``'s train-form QARepVGG blocks converted, the rest as is."""
    blocks = [(name, m) for name, m in backbone.named_modules() if isinstance(m, QARepVGGBlock) and not m.deploy]
    out, converted, clamped = dict(state), 0, []
    for name, block in blocks:
        prefix = f'{name}.' if name else ''
        params = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
        if 'rbr_1x1.conv.weight' not in params:
            continue
        try:
            tensors, count = qarepvgg_block_tensors(params, block.rbr_dense.bn.eps)
        except KeyError as err:
            raise CheckpointError(f'{source}: block {name} lacks {prefix}{err.args[0]} for the QARepVGG '
                                  f'conversion') from None
        for key in params:
            del out[f'{prefix}{key}']
        out.update({f'{prefix}{key}': value for key, value in tensors.items()})
        converted += 1
        if count:
            clamped.append(f'{name} ({count})')
    if converted:
        print_log(f'RepVGG -> QARepVGG: {converted} blocks converted from {source} (1x1 and identity BNs absorbed '
                  f'into the post-sum BN; the same function in eval mode)', logger='current', level=logging.INFO)
    if clamped:
        shown = ', '.join(clamped[:10]) + (f', and {len(clamped) - 10} more blocks' if len(clamped) > 10 else '')
        print_log(f'RepVGG -> QARepVGG: identity BN scale below {MIN_IDENTITY_SCALE:g} in {shown}: clamped '
                  f'to +-{MIN_IDENTITY_SCALE:g}, those channels differ by up to {2 * MIN_IDENTITY_SCALE:g} * |input|',
                  logger='current', level=logging.WARNING)
    return out

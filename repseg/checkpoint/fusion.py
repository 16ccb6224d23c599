"""Fuse a train-form backbone state dict into the deploy form, block by block, with RepSeg's own block code.

Each block is rebuilt from its tensor shapes alone, so the fusion needs neither the arch nor the backbone's strides
and dilations (the fused kernel does not depend on them). The algebra runs in float64, cast back to the file's dtype.
"""
import re
from collections import defaultdict
from typing import Dict

import torch
from torch import Tensor

from ..models.backbones import RepVGGBlock
from ..utils.io import CheckpointError

_BLOCK = re.compile(r'^(stage0\.|stage[1-4]\.\d+\.)(.+)$')


def _fuse_block(prefix: str, params: Dict[str, Tensor], source: str) -> Dict[str, Tensor]:
    try:
        dense = params['rbr_dense.conv.weight']
        cout, cin_per_group = dense.shape[:2]
        has_identity = 'rbr_identity.weight' in params
        # Groups only matter for the identity kernel (in == out there); without one, a per-group block of
        # cin_per_group inputs and one group gives the same fused tensors.
        cin, groups = (cout, cout // cin_per_group) if has_identity else (cin_per_group, 1)
        with torch.device('meta'):
            block = RepVGGBlock(cin, cout, stride=1 if has_identity else 2, groups=groups,
                                use_se='se.down.weight' in params, use_post_se='post_se.down.weight' in params)
        counters = {k: torch.tensor(0) for k in block.state_dict() if k.endswith('num_batches_tracked')}
        floats = {k: (v.double() if v.is_floating_point() else v) for k, v in params.items()}
        block.load_state_dict({**counters, **floats}, strict=True, assign=True)
        block.eval().switch_to_deploy()
    except (KeyError, RuntimeError, ValueError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f'{source}: cannot fuse block {prefix.rstrip(".")} ({detail})') from None
    return {f'{prefix}{key}': value.detach().to(dense.dtype) if value.is_floating_point() else value
            for key, value in block.state_dict().items()}


def fuse_state_dict(state: Dict[str, Tensor], source: str = 'state dict') -> Dict[str, Tensor]:
    """Train-form RepSeg backbone keys -> deploy-form keys (``rbr_reparam``), SE and post-SE weights passed
    through."""
    blocks: Dict[str, Dict[str, Tensor]] = defaultdict(dict)
    for key, value in state.items():
        match = _BLOCK.match(key)
        if not match:
            raise CheckpointError(f'{source}: key {key!r} is not a RepVGG block key')
        blocks[match[1]][match[2]] = value
    return {k: v for prefix, params in blocks.items() for k, v in _fuse_block(prefix, params, source).items()}

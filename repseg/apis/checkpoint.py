"""Reading a trained segmentor's checkpoint safely and refusing one that would give silently wrong results."""
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import torch
from torch import Tensor

from repseg.engine import allow_runner_checkpoints
from repseg.utils.io import CheckpointError, safe_torch_load, unwrap_state_dict

StateDict = Dict[str, Tensor]


def read_checkpoint(path: Any) -> Tuple[StateDict, Dict[str, Any]]:
    """(state dict, meta) of a runner checkpoint, a ``{'state_dict': ...}`` file or a bare state dict, loaded with
    ``weights_only=True`` (plus ``allow_runner_checkpoints``' types); a DDP ``module.`` prefix is stripped."""
    with allow_runner_checkpoints():
        obj = safe_torch_load(path)
    meta = obj.get('meta') if isinstance(obj, dict) and isinstance(obj.get('meta'), dict) else {}
    state = unwrap_state_dict(obj, str(path))
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return dict(state), dict(meta)


def check_state_dict(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], path: Any) -> None:
    """Refuse, in one line, a state dict that does not fit the model or holds values no trained model has:
    missing or unexpected keys, other shapes, NaN/Inf, or a BN running variance <= 0 (it would give NaN or Inf
    after fusion, and garbage before it)."""
    def listed(keys):
        keys = sorted(keys)
        return ', '.join(keys[:3]) + (f' (+{len(keys) - 3} more)' if len(keys) > 3 else '')

    missing = set(expected) - set(state)
    if missing:
        raise CheckpointError(f'{path}: missing {len(missing)} key(s) the model needs: {listed(missing)}')
    unexpected = set(state) - set(expected)
    if unexpected:
        raise CheckpointError(f'{path}: {len(unexpected)} key(s) the model does not have: {listed(unexpected)} '
                              f'(a checkpoint of another config?)')
    for key, ref in expected.items():
        value = state[key]
        if value.shape != ref.shape:
            raise CheckpointError(f'{path}: {key} has shape {tuple(value.shape)}, the config builds '
                                  f'{tuple(ref.shape)}')
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f'{path}: {key} holds NaN or Inf')
        if key.endswith('running_var') and (value <= 0).any():
            name = Path(str(path)).name if path else 'checkpoint'
            raise CheckpointError(f'{path}: {key} has a non-positive BN running variance ({value.min().item():g}); '
                                  f'expected > 0 (a corrupt or hand-edited {name})')

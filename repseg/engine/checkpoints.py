"""The one checked way a checkpoint gets into a model (test, train, infer, quantize, convert, export, the API):
read safely, refused in one line when it does not fit; a lenient load would evaluate a random backbone and print its
mIoU as the model's. Runner checkpoints load under ``weights_only=True`` with the few non-tensor types mmengine
0.10.7 pickles allow-listed (``allow_runner_checkpoints``), never with ``weights_only=False``, which runs any code.
"""
import contextlib
import copy
import pickle
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from torch import Tensor, nn

from repseg.models.forms import state_dict_form
from repseg.utils.io import CheckpointError, safe_torch_load, unwrap_state_dict

StateDict = Dict[str, Tensor]

#: Segmentor types whose construction reads other checkpoints (not built on the meta device to check a state dict).
BUILT_FROM_CHECKPOINTS = frozenset({'QATEncoderDecoder'})


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stands in for ``getattr`` in runner checkpoints, which pickle ``HistoryBuffer.min`` etc. by reference; a
    general ``getattr`` would let a file walk from an allowed class to anything (``__init__.__globals__``...)."""
    if obj is HistoryBuffer and name in {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'refused getattr({getattr(obj, "__name__", type(obj).__name__)}, {name!r}) '
                                 f'in a checkpoint: only HistoryBuffer statistics methods are allowed')


@contextlib.contextmanager
def allow_runner_checkpoints() -> Iterator[None]:
    """Let ``torch.load(weights_only=True)`` read mmengine 0.10.7 runner checkpoints inside this block."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtypes = [type(np.dtype(name)) for name in ('float64', 'float32', 'int64', 'int32', 'uint8', 'bool')]
    # numpy arrays rebuild through _reconstruct; an object-dtype array would still need globals that stay refused
    with torch.serialization.safe_globals([HistoryBuffer, multiarray.scalar, multiarray._reconstruct, np.ndarray,
                                           np.dtype, *dtypes, (_history_buffer_getattr, 'builtins.getattr')]):
        yield


def read_checkpoint(path: Any) -> Tuple[StateDict, Dict[str, Any]]:
    """(state dict, meta) of a runner checkpoint or a (wrapped) state dict, without a DDP ``module.`` prefix."""
    with allow_runner_checkpoints():
        obj = safe_torch_load(path)
    meta = obj.get('meta') if isinstance(obj, dict) and isinstance(obj.get('meta'), dict) else {}
    state = unwrap_state_dict(obj, str(path))
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return dict(state), dict(meta)


def _form(keys: Any) -> str:
    try:
        return state_dict_form(keys, '', prefix='backbone.')
    except CheckpointError:  # not a RepVGG segmentor, or no backbone: no form to compare
        return ''


def _listed(keys: Any) -> str:
    keys = sorted(keys)
    return ', '.join(keys[:3]) + (f' (+{len(keys) - 3} more)' if len(keys) > 3 else '')


def check_state_dict(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], path: Any) -> None:
    """Refuse, in one line, a state dict that does not fit the model or holds values no trained model has: the other
    RepVGG form (naming the config to use), another number of classes, missing or unexpected keys, other shapes,
    NaN/Inf, or a BN running variance <= 0 (it would give NaN or Inf after fusion, and garbage before it)."""
    have, want = _form(state), _form(expected)
    if have and want and have != want:
        fix = ('convert it with tools/convert_to_deploy.py, or test it with the config it was trained with'
               if have == 'train' else 'use the deploy_config.py written beside it by tools/convert_to_deploy.py')
        raise CheckpointError(f'{path}: a {have}-form RepVGG checkpoint, but the config builds the {want} form; {fix}')
    for key in ('decode_head.conv_seg.weight', 'network.weights'):
        if key in state and key in expected and state[key].shape[:1] != expected[key].shape[:1]:
            what = 'classes' if key.startswith('decode_head') else 'IR bytes'
            raise CheckpointError(f'{path}: {key} has {state[key].shape[0]} {what}, the config builds '
                                  f'{expected[key].shape[0]} (a checkpoint of another model, or an edited config)')
    missing = set(expected) - set(state)
    if missing:
        raise CheckpointError(f'{path}: missing {len(missing)} key(s) the model needs: {_listed(missing)} '
                              f'(a checkpoint of another architecture?)')
    unexpected = set(state) - set(expected)
    if unexpected:
        raise CheckpointError(f'{path}: {len(unexpected)} key(s) the model does not have: {_listed(unexpected)} '
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


@contextlib.contextmanager
def naming(source: Any) -> Iterator[None]:
    """Prefix a ``ValueError`` raised inside with ``source``: constructors do not know which file a value came from."""
    try:
        yield
    except ValueError as err:
        if str(err).startswith(f'{source}:'):
            raise
        raise ValueError(f'{source}: {err}') from None


def read_checked(cfg: Config, path: Any) -> StateDict:
    """The state dict of ``path``, checked against ``cfg``'s model built on the meta device, before any log or work
    dir exists (QAT segmentors, built from other checkpoints, are checked when loaded instead)."""
    state, _ = read_checkpoint(path)
    if cfg.model.get('type') not in BUILT_FROM_CHECKPOINTS:
        with torch.device('meta'), DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'mmseg'), \
                naming(cfg.filename):
            expected = MODELS.build(copy.deepcopy(cfg.model)).state_dict()
        check_state_dict(state, expected, path)
    return state


def load_checked(model: nn.Module, path: Any, state: Optional[StateDict] = None) -> Dict[str, Any]:
    """Load ``path`` (or its ``state`` already read) strictly after ``check_state_dict``; returns its meta (or {})."""
    meta: Dict[str, Any] = {}
    if state is None:
        state, meta = read_checkpoint(path)
    check_state_dict(state, model.state_dict(), path)
    with naming(path):
        model.load_state_dict(state, strict=True)
    return meta

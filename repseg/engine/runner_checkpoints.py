"""Resuming mmengine runner checkpoints under torch's ``weights_only=True`` default, without trusting pickles.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means ``weights_only=True``,
which refuses the non-tensor objects a runner checkpoint holds (the message hub's ``HistoryBuffer``, numpy scalars
in the logged metrics, HistoryBuffer's statistics methods by ``getattr``). Rather than ``weights_only=False``,
which would run any code a file carries, these few types are allow-listed for the duration of a train or test run;
everything else stays refused.
"""
import contextlib
import pickle
from typing import Any, Iterator

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stands in for ``getattr`` in runner checkpoints, which pickle ``HistoryBuffer.min`` etc. by reference; a
    general ``getattr`` would let a file walk from an allowed class to anything (``__init__.__globals__``...)."""
    if obj is HistoryBuffer and name in {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'refused getattr({getattr(obj, "__name__", type(obj).__name__)}, {name!r}) '
                                 f'in a checkpoint: only HistoryBuffer statistics methods are allowed')


@contextlib.contextmanager
def allow_runner_checkpoints() -> Iterator[None]:
    """Let ``torch.load(weights_only=True)`` read runner checkpoints inside this block: the extra globals found in
    mmengine 0.10.7 runner checkpoints (checked by tests/test_train_test.py)."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtypes = [type(np.dtype(name)) for name in ('float64', 'float32', 'int64', 'int32', 'uint8', 'bool')]
    # numpy arrays rebuild through _reconstruct; an object-dtype array would still need globals that stay refused
    with torch.serialization.safe_globals([HistoryBuffer, multiarray.scalar, multiarray._reconstruct, np.ndarray,
                                           np.dtype, *dtypes, (_history_buffer_getattr, 'builtins.getattr')]):
        yield

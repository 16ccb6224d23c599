"""The lowest layer: safe checkpoint reading and atomic writes, logit comparison, timing, the machine description."""
from .io import (CheckpointError, atomic_dir, atomic_torch_save, atomic_write, check_out_dir, check_out_file,
                 safe_torch_load, unwrap_state_dict)
from .logits import LOGIT_RTOL, MIN_AGREEMENT, LogitDiff, compare_logits
from .machine import cpu_isa, machine_name
from .timing import median_ms, timed_calls

__all__ = ['CheckpointError', 'LOGIT_RTOL', 'LogitDiff', 'MIN_AGREEMENT', 'atomic_dir', 'atomic_torch_save',
           'atomic_write', 'check_out_dir', 'check_out_file', 'compare_logits', 'cpu_isa', 'machine_name', 'median_ms',
           'safe_torch_load', 'timed_calls', 'unwrap_state_dict']

"""The lowest layer: safe checkpoint reading and atomic writes, logit comparison, timing, the machine description."""
from .io import (CheckpointError, WriteError, as_write_error, atomic_dir, atomic_torch_save, atomic_write,
                 check_out_dir, check_out_file, is_write_failure, safe_torch_load, torch_bytes, unwrap_state_dict,
                 write_file)
from .logits import LOGIT_RTOL, MIN_AGREEMENT, LogitDiff, compare_logits
from .machine import cpu_isa, machine_name
from .timing import median_ms, timed_calls

__all__ = ['CheckpointError', 'LOGIT_RTOL', 'LogitDiff', 'MIN_AGREEMENT', 'atomic_dir', 'atomic_torch_save',
           'atomic_write', 'check_out_dir', 'check_out_file', 'compare_logits', 'cpu_isa', 'machine_name', 'median_ms',
           'safe_torch_load', 'timed_calls', 'torch_bytes', 'unwrap_state_dict', 'WriteError', 'as_write_error',
           'is_write_failure', 'write_file']

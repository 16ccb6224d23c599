"""Peak memory inside a worker process (one process per measured model).

On CPU: the process's peak resident set (VmHWM) over the timed calls; the worker resets the high-water mark after
warm-up (/proc/self/clear_refs, value 5), so building, calibration, parity references and compilation do not count.
On CUDA: ``torch.cuda.max_memory_allocated`` over the same calls.
"""
import ctypes
import gc
import resource
from contextlib import suppress
from typing import Dict

import torch


def rss_kb(field: str) -> int:
    """A /proc/self/status memory field in KiB (VmRSS: now, VmHWM: peak since the last reset)."""
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ':'))


class PeakMemory:
    """Peak memory between ``start`` and ``stop``: ``peak_mem_mb`` (all of it) and ``peak_mem_delta_mb`` (above what
    was resident at ``start``: activations and workspaces)."""

    def __init__(self, device: str):
        self.device = device
        self.method = ''
        self.base_kb = 0

    def start(self) -> None:
        gc.collect()  # and hand freed heap pages back to the OS, so that the baseline is the live state
        with suppress(OSError, AttributeError):
            ctypes.CDLL('libc.so.6').malloc_trim(0)
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base_kb = torch.cuda.memory_allocated() // 1024
            self.method = 'cuda max_memory_allocated'
            return
        self.base_kb = rss_kb('VmRSS')
        try:
            with open('/proc/self/clear_refs', 'w') as handle:
                handle.write('5')
            self.method = 'process peak RSS (VmHWM reset after warm-up)'
        except OSError:
            self.method = 'process peak RSS over the whole process life (ru_maxrss; VmHWM reset not permitted)'

    def stop(self) -> Dict[str, float]:
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()
            peak_kb = torch.cuda.max_memory_allocated() // 1024
        elif self.method.startswith('process peak RSS (VmHWM'):
            peak_kb = rss_kb('VmHWM')
        else:
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {'peak_mem_mb': peak_kb / 1024, 'peak_mem_delta_mb': max(0, peak_kb - self.base_kb) / 1024,
                'resident_before_mb': self.base_kb / 1024, 'mem_method': self.method}

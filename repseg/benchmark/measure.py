"""Timing and peak-memory primitives used inside a worker process (one process per measured model).

Peak memory on CPU is the process's peak resident set (VmHWM) over the timed calls: the worker resets the
high-water mark after warm-up (Linux /proc/self/clear_refs, value 5), so model building, BN calibration, parity
references and compilation do not count, while weights, runtime state and every activation alive during inference
do. On CUDA it is ``torch.cuda.max_memory_allocated`` over the same calls.
"""
import ctypes
import gc
import resource
import time
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor

PARITY_TOLERANCE = 1e-4  # relative to max |reference logit|


def rss_kb(field: str = 'VmRSS') -> int:
    """A /proc/self/status memory field in KiB (VmRSS: now, VmHWM: peak since the last reset)."""
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise ValueError(f'/proc/self/status has no {field} field')


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so that the memory baseline is the live state."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory between ``start`` and ``stop``: ``peak_mem_mb`` (all of it) and ``peak_mem_delta_mb`` (above what
    was resident at ``start``: activations and workspaces)."""

    def __init__(self, device: str):
        self.device = device
        self.method = ''
        self.base_kb = 0

    def start(self) -> None:
        release_memory()
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


def timed_calls(fn: Callable[[], object], n: int, device: str) -> List[float]:
    """Wall-clock seconds of ``n`` calls of ``fn``, synchronizing CUDA around each."""
    cuda = device.startswith('cuda')
    times = []
    for _ in range(n):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def parity(output: Tensor, reference: Tensor, tolerance: Optional[float] = PARITY_TOLERANCE) -> Dict[str, object]:
    """How far ``output`` is from ``reference``, relative to max |reference| (the acceptance rule for runtimes), and
    the argmax agreement over the class axis (dim 1 of N x C x H x W logits). ``tolerance=None``: recorded, not
    judged (int8), ``ok`` is None."""
    output, reference = output.detach().float().cpu(), reference.detach().float().cpu()
    if output.shape != reference.shape:
        raise ValueError(f'parity: output shape {tuple(output.shape)}, expected {tuple(reference.shape)}')
    max_abs_diff = (output - reference).abs().max().item()
    max_abs_ref = reference.abs().max().item()
    rel = max_abs_diff / max_abs_ref if max_abs_ref > 0 else max_abs_diff
    agreement = (output.argmax(1) == reference.argmax(1)).float().mean().item() if output.dim() == 4 else None
    return {'max_abs_diff': max_abs_diff, 'max_abs_ref': max_abs_ref, 'rel_diff': rel, 'argmax_agreement': agreement,
            'tolerance': tolerance, 'ok': None if tolerance is None else bool(rel <= tolerance)}

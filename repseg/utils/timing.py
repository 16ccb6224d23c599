"""Wall-clock timing of a callable: the one implementation the benchmark, the exporters and the int8 report use."""
import statistics
import time
from typing import Callable, List

import torch


def timed_calls(fn: Callable[[], object], n: int, device: str = 'cpu') -> List[float]:
    """Wall-clock seconds of ``n`` calls of ``fn``, synchronizing ``device`` (its own GPU, e.g. cuda:1) around each."""
    cuda = device.startswith('cuda')
    times = []
    for _ in range(n):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def median_ms(fn: Callable[[], object], repeats: int = 3, device: str = 'cpu') -> float:
    """Median wall time of ``fn`` in milliseconds over ``repeats`` calls, after one untimed warm-up call."""
    if repeats < 1:
        raise ValueError(f'repeats={repeats}: expected at least 1')
    fn()
    return 1e3 * statistics.median(timed_calls(fn, repeats, device))

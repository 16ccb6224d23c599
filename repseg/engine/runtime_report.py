"""The runtime and precision behind tools/test.py's figures, in its results: printed with the metrics and saved in
the run's JSON log, so that a figure computed in bf16 or int8 never passes for the fp32 model's."""
from typing import Any, Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import nn


class RuntimeInResults(Hook):
    """Adds ``runtime`` and ``precision`` (what ``repseg.runtime.with_runtime`` ran, after any fallback) to the test
    metrics before mmengine's hooks log and save them."""

    priority = 'HIGHEST'  # before RuntimeInfoHook copies the metrics into the message hub that the logger reads

    def __init__(self, segmentor: nn.Module):
        self.segmentor = segmentor

    def after_test_epoch(self, runner: Any, metrics: Optional[Dict[str, Any]] = None) -> None:
        runtime = getattr(self.segmentor, 'runtime', 'eager')
        precision = getattr(self.segmentor, 'runtime_precision', 'fp32')
        print_log(f'the figures above were computed by runtime {runtime} in {precision}', logger='current')
        if metrics is not None:
            metrics.update(runtime=runtime, precision=precision)

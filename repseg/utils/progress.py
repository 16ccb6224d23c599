"""mmengine's progress bar, with its line ended: when it completes, and by the CLI's error boundary when a run stops
part-way, so that an error line never continues the bar's (``[>>  ] 3/10, ETA: 5serror: ...``)."""
import sys
from typing import List, Optional, TextIO

from mmengine.utils import ProgressBar

_UNFINISHED: List['LineProgressBar'] = []


class LineProgressBar(ProgressBar):
    """``ProgressBar(task_num)`` writing to the current ``sys.stdout`` (mmengine binds the one of its import time)."""

    def __init__(self, task_num: int, file: Optional[TextIO] = None):
        super().__init__(task_num, file=file or sys.stdout)
        _UNFINISHED.append(self)
        if task_num <= 0:  # nothing to count
            self.finish()

    def update(self, num_tasks: int = 1) -> None:
        super().update(num_tasks)
        if self.completed >= self.task_num:
            self.finish()

    def finish(self) -> None:
        """End the bar's line (once), also short of its count."""
        if self in _UNFINISHED:
            _UNFINISHED.remove(self)
            self.file.write('\n')
            self.file.flush()


def end_progress_lines() -> None:
    """End the line of every bar still running (the run stopped part-way)."""
    for bar in list(_UNFINISHED):
        bar.finish()

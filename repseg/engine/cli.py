"""Command-line error handling shared by the tools: user mistakes end in one line, not a traceback."""
import argparse
import os
import sys
from typing import Callable

import torch.distributed as dist
from mmengine.config import DictAction

from repseg.utils.io import WriteError, as_write_error, is_write_failure

#: Errors that come from bad input (a path, a config key, a value); anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)

#: How torch re-raises an error of a dataloader worker: the worker's whole traceback inside the message.
WORKER_TRACEBACK = 'Original Traceback (most recent call last):'


def one_line(err: BaseException) -> str:
    """The message of a user error on one line; for an error raised in a dataloader worker, the worker's own
    message (the last line of the traceback torch packs into it), not the traceback."""
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if WORKER_TRACEBACK in message:
        last = message.rstrip().splitlines()[-1]
        message = last.split(': ', 1)[1] if ': ' in last else last  # 'ValueError: x.png: ...' -> 'x.png: ...'
    return ' '.join(message.split())


class SharedError(Exception):
    """Marks an error that every rank of a multi-process run raised together (a checkpoint that rank 0 could not
    write, made known to all ranks): printed once, by rank 0, like an error found before the run."""


def _report(line: str, shared: bool = False) -> None:
    """Print ``line`` once per run: under torchrun, an error found before the process group started (arguments,
    config, checkpoint: the same on every rank) or ``shared`` by all ranks by rank 0 only; one found during the run
    by the rank that found it, tagged with it."""
    rank = int(os.environ.get('RANK', '0') or 0)
    started = dist.is_available() and dist.is_initialized()
    if int(os.environ.get('WORLD_SIZE', '1') or 1) > 1 and started and not shared:
        line = f'[rank {rank}] {line}'
    elif rank != 0:
        return
    print(line, file=sys.stderr)


def run_cli(main: Callable[[], None]) -> None:
    """Run ``main``; print a user error, or a write the machine refused (``error: could not write FILE: REASON``), as
    ``error: ...`` on one line and exit 2, an interrupt as one line and exit 130 (the tools write their results whole
    or not at all). REPSEG_DEBUG=1 shows tracebacks."""
    try:
        main()
    except KeyboardInterrupt:
        if os.environ.get('REPSEG_DEBUG'):
            raise
        _report('error: interrupted; no result half-written (outputs are moved into place only when complete)')
        sys.exit(130)
    except (OSError, *USER_ERRORS) as err:
        if os.environ.get('REPSEG_DEBUG') or not (isinstance(err, USER_ERRORS) or is_write_failure(err)):
            raise
        if is_write_failure(err) and not isinstance(err, WriteError):  # raised outside RepSeg's writers
            err = as_write_error(err, err.filename or 'a file (the library gave no name)')
        _report(f'error: {one_line(err)}', shared=isinstance(err, SharedError))
        sys.exit(2)


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """The arguments tools/train.py and tools/test.py share, as in MMSegmentation's own tools."""
    parser.add_argument('--work-dir', help='where logs (and checkpoints) go (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys: key=value ... (checked: an unknown key is an error)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, and export LOCAL_RANK for launchers that pass --local-rank instead of setting it."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args

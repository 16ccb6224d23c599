"""Command-line error handling shared by the tools: user mistakes end in one line, not a traceback."""
import argparse
import os
import sys
import time
from typing import Callable

import torch.distributed as dist
from mmengine.config import DictAction

from repseg.utils.io import WriteError, as_write_error, is_write_failure
from repseg.utils.progress import end_progress_lines
from .device import select_device

#: Errors that come from bad input (a path, a config key, a value); anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)

#: How torch re-raises an error of a dataloader worker: the worker's whole traceback inside the message.
WORKER_TRACEBACK = 'Original Traceback (most recent call last):'


def one_line(err: BaseException) -> str:
    """A user error's message on one line (a dataloader worker's own message, not the traceback torch packs)."""
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if WORKER_TRACEBACK in message:
        last = message.rstrip().splitlines()[-1]
        message = last.split(': ', 1)[1] if ': ' in last else last  # 'ValueError: x.png: ...' -> 'x.png: ...'
    return ' '.join(message.split())


#: How long a rank other than 0 waits for rank 0 to print an error they share before it exits. torchrun stops every
#: process once one fails, so a rank that exited first could silence rank 0 (seen in CI); rank 0's exit ends the wait.
REPORT_GRACE_S = 20.0


class SharedError(Exception):
    """An error every rank raised together (e.g. a checkpoint rank 0 could not write): printed once, by rank 0."""


def _report(line: str, shared: bool = False, wait: bool = True) -> None:
    """Print ``line`` once: by rank 0 for an error before the group started or ``shared``, else tagged by rank. A
    rank that leaves it to rank 0 first waits ``REPORT_GRACE_S`` for torchrun to end it (rank 0 failed and said so);
    still running, it says so itself, tagged: the error was its own (``wait=False``: it stays silent, an interrupt)."""
    # srun sets SLURM_PROCID / SLURM_NTASKS; RANK / WORLD_SIZE only once the process group starts
    rank = int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')) or 0)
    world = int(os.environ.get('WORLD_SIZE', os.environ.get('SLURM_NTASKS', '1')) or 1)
    started = dist.is_available() and dist.is_initialized()
    if world > 1 and started and not shared:
        line = f'[rank {rank}] {line}'
    elif rank != 0:
        if not wait:
            return
        time.sleep(REPORT_GRACE_S)
        line = f'[rank {rank}] {line}'
    end_progress_lines()  # the error starts a line of its own, also after a bar
    print(line, file=sys.stderr)


def run_cli(main: Callable[[], None]) -> None:
    """Run ``main``; a user error or a refused write is one ``error: ...`` line and exit 2, an interrupt one line and
    exit 130 (results are written whole or not at all); REPSEG_DEBUG=1 shows tracebacks."""
    try:
        main()
    except KeyboardInterrupt:
        if os.environ.get('REPSEG_DEBUG'):
            raise
        _report('error: interrupted; no result half-written (outputs are moved into place only when complete)',
                wait=False)
        sys.exit(130)
    except (OSError, *USER_ERRORS) as err:
        if os.environ.get('REPSEG_DEBUG') or not (isinstance(err, USER_ERRORS) or is_write_failure(err)):
            raise
        if is_write_failure(err) and not isinstance(err, WriteError):  # raised outside RepSeg's writers
            err = as_write_error(err, err.filename or 'a file (the library gave no name)')
        _report(f'error: {one_line(err)}', shared=isinstance(err, SharedError))
        sys.exit(2)


#: ``--shape H W``'s default in every tool that has one: MMSegmentation's Cityscapes test size (half resolution).
DEFAULT_SHAPE = (512, 1024)


def add_shape_arg(parser: argparse.ArgumentParser, what: str, default=DEFAULT_SHAPE) -> None:
    """``--shape H W`` (height first, as everywhere in RepSeg), defaulting to ``DEFAULT_SHAPE``."""
    suffix = f' (default: {default[0]} {default[1]})' if default else ''
    parser.add_argument('--shape', type=int, nargs=2, default=default, metavar=('H', 'W'), help=what + suffix)


class DeprecatedSpelling(argparse.Action):
    """Stores the value; given through another option string than ``preferred`` (default: the first), it says in one
    line which spelling to use."""

    def __init__(self, *args, preferred: str = '', **kwargs):
        super().__init__(*args, **kwargs)
        self.preferred = preferred or self.option_strings[0]

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string != self.preferred:
            print(f'warning: {option_string} is deprecated here; use {self.preferred}', file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_out_dir_arg(parser: argparse.ArgumentParser, what: str, required: bool = True, old: str = '') -> None:
    """``--out-dir``, the folder output of every tool (``--out`` is always a file); ``old``: a deprecated spelling."""
    parser.add_argument('--out-dir', *([old] if old else []), dest='out_dir', required=required,
                        action=DeprecatedSpelling, help=what + (f' ({old}: deprecated spelling)' if old else ''))


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """The arguments tools/train.py and tools/test.py share, as in MMSegmentation's own tools."""
    parser.add_argument('--work-dir', help='where logs (and checkpoints) go (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys: key=value ... (checked: an unknown key is an error)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='none: one process; pytorch: started by torchrun; slurm: started by srun')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help='set by torch.distributed.launch; torchrun sets LOCAL_RANK instead')
    parser.add_argument('--device', help='cpu, cuda or cuda:N (default: a GPU if one is visible, else the CPU); '
                                         'cpu keeps a run, torchrun included, on the CPU of a machine with GPUs')


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, export LOCAL_RANK for launchers that pass --local-rank instead of setting it, and apply --device."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    select_device(args.device, args.launcher)
    return args

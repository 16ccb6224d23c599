from .checks import check_data_roots, check_fresh_work_dir
from .cli import add_runner_args, parse_runner_args, run_cli
from .config_options import merge_checked_options
from .launch import load_config, test, train
from .runner_checkpoints import allow_runner_checkpoints

__all__ = ['add_runner_args', 'allow_runner_checkpoints', 'check_data_roots', 'check_fresh_work_dir', 'load_config',
           'merge_checked_options', 'parse_runner_args', 'run_cli', 'test', 'train']

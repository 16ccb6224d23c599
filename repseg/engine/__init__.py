from .checkpoint_hook import AtomicCheckpointHook
from .checkpoints import allow_runner_checkpoints, check_state_dict, load_checked, read_checked, read_checkpoint
from .checks import check_data_roots, check_fresh_work_dir
from .cli import add_runner_args, parse_runner_args, run_cli
from .config_options import merge_checked_options
from .distributed import CPUDistributedDataParallel, distributed_run, init_cpu_distributed, slurm_env
from .launch import load_config, test, train
from .sync_batchnorm import CPUSyncBatchNorm, convert_sync_batchnorm

__all__ = ['AtomicCheckpointHook', 'CPUDistributedDataParallel', 'CPUSyncBatchNorm', 'add_runner_args',
           'allow_runner_checkpoints', 'check_data_roots', 'check_fresh_work_dir', 'check_state_dict',
           'convert_sync_batchnorm', 'distributed_run', 'init_cpu_distributed', 'load_checked', 'load_config',
           'merge_checked_options', 'parse_runner_args', 'read_checked', 'read_checkpoint', 'run_cli', 'slurm_env',
           'test', 'train']

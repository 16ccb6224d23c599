"""Multi-process runs (``--launcher pytorch|slurm``) on machines with and without GPUs.

On GPUs mmengine's Runner does it all: NCCL, or ``env_cfg.dist_cfg.backend``. Without an accelerator mmengine 0.10.7
cannot start: ``init_dist`` calls ``torch.cuda.set_device`` unconditionally, its DDP wrapper passes ``device_ids``
that torch refuses for CPU modules, and torch's SyncBN refuses CPU tensors. There RepSeg starts the process group
itself before the Runner is built (gloo by default) and wraps the model in ``CPUDistributedDataParallel``; the rest
stays mmengine's.
"""
import contextlib
import datetime
import inspect
import os
import subprocess
from typing import Any, Dict, Iterator, List, Mapping, Optional

import torch.distributed as dist
from mmengine.config import Config
from mmengine.device import get_device
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .sync_batchnorm import convert_sync_batchnorm

_DDP_ARGS = frozenset(inspect.signature(DistributedDataParallel.__init__).parameters)
LAUNCHERS = ('none', 'pytorch', 'slurm')
#: Variables torchrun (and ``slurm_env``) set for every process; without them ``--launcher pytorch`` cannot start.
DIST_ENV = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for a model on the CPU: without ``device_ids``, with ``CPUSyncBatchNorm`` layers."""

    def __init__(self, module: nn.Module, device_ids: Optional[List[int]] = None, **kwargs: Any) -> None:
        if 'broadcast_buffers' in kwargs and 'forward_sync_buffers' in _DDP_ARGS:
            # torch >= 2.13 deprecates it (a FutureWarning at every start); the new flag also syncs buffers once at
            # construction, which only makes the ranks' BN statistics start equal
            kwargs['forward_sync_buffers'] = kwargs.pop('broadcast_buffers')
        super().__init__(module=convert_sync_batchnorm(module), device_ids=None, **kwargs)


@MODEL_WRAPPERS.register_module()
class TestDistributedWrapper(nn.Module):
    """The model of a multi-process test: each process tests its share of the images and the evaluator gathers the
    results, so nothing is synchronized. Not DDP, which refuses a model without parameters (a tools/quantize.py folder)
    and would place it on a GPU of its own choosing."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def val_step(self, data: Any) -> list:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> list:
        return self.module.test_step(data)


def slurm_env(env: Mapping[str, str], port: Optional[int] = None) -> Dict[str, str]:
    """The torch.distributed variables of a process started by ``srun``, as mmengine's slurm launcher sets them."""
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST') if k not in env]
    if missing:
        raise ValueError(f'--launcher slurm: {", ".join(missing)} not set; start the tool with srun '
                         f'(or use --launcher pytorch with torchrun)')
    out = dict(RANK=env['SLURM_PROCID'], WORLD_SIZE=env['SLURM_NTASKS'],
               LOCAL_RANK=env.get('SLURM_LOCALID', env['SLURM_PROCID']),
               MASTER_PORT=str(port) if port is not None else env.get('MASTER_PORT', '29500'))
    addr = env.get('MASTER_ADDR')
    if not addr:
        try:
            hosts = subprocess.run(['scontrol', 'show', 'hostnames', env['SLURM_NODELIST']], capture_output=True,
                                   text=True, check=True).stdout.split()
        except (OSError, subprocess.CalledProcessError) as err:
            hosts, reason = [], str(err)
        else:
            reason = 'no host listed'
        if not hosts:
            raise ValueError(f'--launcher slurm: cannot find the master host of SLURM_NODELIST='
                             f'{env["SLURM_NODELIST"]} with scontrol ({reason}); set MASTER_ADDR')
        addr = hosts[0]
    out['MASTER_ADDR'] = addr
    return out


def init_cpu_distributed(cfg: Config) -> bool:
    """On a machine without an accelerator, start the process group for ``cfg.launcher`` and make the Runner wrap the
    model in ``CPUDistributedDataParallel``; returns whether it started one."""
    launcher = cfg.get('launcher', 'none')
    if launcher not in LAUNCHERS:
        raise ValueError(f'--launcher {launcher}: expected one of {", ".join(LAUNCHERS)}')
    if launcher == 'none':
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg') or {})
    if launcher == 'slurm':
        os.environ.update(slurm_env(os.environ, dist_cfg.get('port')))
    missing = [k for k in DIST_ENV if k not in os.environ]
    if missing:
        raise ValueError(f'--launcher {launcher}: {", ".join(missing)} not set; start the tool with '
                         f'`torchrun --nproc_per_node N tools/...` (or use --launcher none for one process)')
    if get_device() != 'cpu' or dist.is_initialized():
        return False
    backend = dist_cfg.get('backend') or 'gloo'  # the config's, unless it needs GPUs (default_runtime: nccl)
    backend = 'gloo' if backend == 'nccl' else backend
    # the logged and saved config names the backend that runs
    cfg.env_cfg = dict(cfg.get('env_cfg') or {}, dist_cfg=dict(dist_cfg, backend=backend))
    kwargs = {k: v for k, v in dist_cfg.items() if k not in ('backend', 'port', 'init_backend')}
    if kwargs.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    dist.init_process_group(backend=backend, rank=int(os.environ['RANK']), world_size=int(os.environ['WORLD_SIZE']),
                            **kwargs)
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        # the arguments mmengine's Runner gives its default wrapper
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
        wrapper['type'] = 'CPUDistributedDataParallel'
    cfg.model_wrapper_cfg = wrapper
    return True


@contextlib.contextmanager
def distributed_run(cfg: Config) -> Iterator[None]:
    """``init_cpu_distributed``, and end the group after a successful run only: after a failure, tearing it down could
    block on ranks still waiting in a collective."""
    init_cpu_distributed(cfg)
    yield
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

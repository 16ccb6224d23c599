"""What tools/train.py and tools/test.py do, as functions: config assembly and the mmengine Runner."""
import os.path as osp
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

from mmengine.config import Config
from mmengine.device import get_device
from mmengine.dist import barrier, get_rank
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner, find_latest_checkpoint

from repseg.runtime import NATIVE, with_runtime
from repseg.utils import check_out_dir
from repseg.utils.io import publish_dir
from .checkpoints import allow_runner_checkpoints, load_checked, read_checked
from .checks import check_data_roots, check_fresh_work_dir
from .config_file import read_config
from .config_options import merge_checked_options
from .distributed import TestDistributedWrapper, distributed_run  # noqa: F401  (registers the wrapper)
from .runtime_report import RuntimeInResults


def load_config(config: str, cfg_options: Optional[Dict[str, Any]] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Read a config, apply checked ``--cfg-options``, set the launcher and work dir (MMSegmentation's default)."""
    cfg = read_config(config)
    merge_checked_options(cfg, cfg_options, config)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def train(cfg: Config, resume: bool = False, amp: bool = False) -> Runner:
    """Train with mmengine's Runner and ``AtomicCheckpointHook``; an earlier run's checkpoints only with resume."""
    check_data_roots(cfg, ['train_dataloader', 'val_dataloader'])
    check_fresh_work_dir(cfg.work_dir, resume)
    if amp and get_device() != 'cuda':
        raise ValueError('--amp: needs a CUDA device (mmengine\'s AmpOptimWrapper); this run is on the '
                         f'{get_device()}: train without --amp')
    start = cfg.get('load_from') or (find_latest_checkpoint(cfg.work_dir) if resume else None)
    if start:  # the Runner would load it leniently (load_from) or end in a traceback (a truncated --resume file)
        read_checked(cfg, start)
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.resume = resume
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if hook is not None and hook.get('type') == 'CheckpointHook':  # e.g. MMSegmentation's own default_runtime
        hook['type'] = 'AtomicCheckpointHook'  # the same hook, whose checkpoints survive a full disk
    with distributed_run(cfg):
        runner = Runner.from_cfg(cfg)
        with allow_runner_checkpoints():
            runner.train()
    return runner


def test(cfg: Config, checkpoint: str, out_dir: Optional[str] = None, show_dir: Optional[str] = None,
         cityscapes_official: bool = False, runtime: str = NATIVE, force: bool = False) -> Dict[str, Any]:
    """Evaluate ``checkpoint`` in MMSegmentation's test loop, its network run by ``runtime`` (a registered runtime,
    'native' or 'auto'): the config's metrics with the runtime and precision that computed them, plus, when asked,
    labelId PNGs in ``out_dir`` (staged, moved into place whole; ``force`` replaces one that holds files) and the
    official Cityscapes class mIoU."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'{checkpoint}: no such checkpoint file')
    check_data_roots(cfg, ['test_dataloader'])
    state = read_checked(cfg, checkpoint)  # before the Runner writes anything; mmengine's own loader is lenient
    cfg.load_from, cfg.resume = None, False
    if cityscapes_official and not out_dir:
        out_dir = osp.join(cfg.work_dir, 'pred_labelIds')
    staging = None
    if out_dir:  # the predictions of one run only: what the official evaluator grades must be this model's
        check_out_dir(out_dir, force)
        staging = staging_dir(out_dir)  # one name for every rank: each writes its images there
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dict(type='CityscapesLabelIdWriter', out_dir=str(staging),
                                                official=cityscapes_official, shown_dir=str(out_dir))]
    if show_dir:
        cfg.default_hooks['visualization'] = dict(type='SegVisualizationHook', draw=True, interval=1)
        cfg.visualizer.save_dir = show_dir
    if cfg.launcher != 'none':  # each process tests its share: nothing to synchronize, no DDP
        cfg.model_wrapper_cfg = dict(type='TestDistributedWrapper')
    with distributed_run(cfg):
        runner = Runner.from_cfg(cfg)
        # the process group has started (srun sets SLURM_PROCID, not RANK): one process publishes
        main = get_rank() == 0
        if staging is not None:
            if main:
                shutil.rmtree(staging, ignore_errors=True)  # what an interrupted run left
            barrier()  # before any rank writes into it
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        load_checked(model, checkpoint, state)
        with_runtime(model, runtime)  # refuses a runtime that does not serve this model before any image is read
        runner.register_hook(RuntimeInResults(model))
        try:
            metrics = runner.test()
            if staging is not None and main:
                if not staging.is_dir():  # a test set without images
                    staging.mkdir(parents=True)
                publish_dir(staging, Path(out_dir), force)
        finally:
            if staging is not None and main:
                shutil.rmtree(staging, ignore_errors=True)
    return metrics


def staging_dir(out_dir: str) -> Path:
    """The hidden sibling where tools/test.py --out builds ``out_dir``."""
    out = Path(out_dir)
    return out.with_name(f'.{out.name}.partial')

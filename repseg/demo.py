"""The embedded demo, end to end on a CPU: sample data -> train -> test -> deploy form -> test again -> overlays.

It runs the same library functions as tools/train.py, tools/test.py, tools/convert_to_deploy.py and tools/infer.py,
into a new timestamped work dir per run (earlier runs are never overwritten).
"""
import glob
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List

import cv2
import numpy as np

from .apis import infer_to_dir, init_segmentor
from .datasets import make_sample_dataset
from .datasets.labels import CLASS_NAMES
from .deploy import convert_to_deploy
from .engine import load_config, test, train

SAMPLE_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'pspnet_repvgg_a0_sample.py')


@dataclass
class DemoResult:
    work_dir: str
    metrics: Dict[str, Dict[str, float]] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    baseline_miou: float = float('nan')


def majority_class_miou(label_files: List[str]) -> float:
    """mIoU (%) of predicting the most frequent class everywhere: the floor a trained model must clearly beat."""
    counts = np.zeros(256, np.int64)
    for path in label_files:
        counts += np.bincount(cv2.imread(path, cv2.IMREAD_UNCHANGED).ravel(), minlength=256)
    counts = counts[:len(CLASS_NAMES)]
    present = counts > 0
    # constant prediction c: IoU(c) = n_c / total, IoU(other present classes) = 0
    return 100.0 * counts.max() / counts.sum() / present.sum()


def run_demo(work_root: str = 'work_dirs/demo', data_root: str = 'data/sample', config: str = SAMPLE_CONFIG,
             max_iters: int = 0, log=print) -> DemoResult:
    """Run the whole pipeline; ``max_iters`` > 0 shortens training (for tests)."""
    work_dir = osp.join(work_root, time.strftime('%Y%m%d_%H%M%S'))
    result = DemoResult(work_dir)
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.seconds[name] = now - clock
        clock = now

    if osp.isdir(osp.join(data_root, 'leftImg8bit', 'train')) and osp.isdir(osp.join(data_root, 'gtFine', 'val')):
        log(f'[demo] sample data: {data_root} (already generated)')
    else:
        log(f'[demo] sample data generated:\n{make_sample_dataset(data_root).format()}')
    lap('data')

    def cfg_for(path: str, phase: str):
        cfg = load_config(path, work_dir=osp.join(work_dir, phase))
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[loader].dataset.data_root = data_root
        cfg.experiment_name = f'{phase}_{osp.basename(work_dir)}'
        if max_iters:
            cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = max_iters
            cfg.param_scheduler[0].end = max_iters + 1
            cfg.default_hooks.checkpoint.interval = max_iters
        return cfg

    train_cfg = cfg_for(config, 'train')
    train(train_cfg)
    checkpoint = osp.join(train_cfg.work_dir, f'iter_{train_cfg.train_cfg.max_iters}.pth')
    lap('train')

    result.metrics['train form'] = test(cfg_for(config, 'test_train_form'), checkpoint)
    lap('test (train form)')

    deploy_dir = osp.join(work_dir, 'deploy')
    val_images = sorted(glob.glob(osp.join(data_root, 'leftImg8bit', 'val', '*', '*.png')))
    convert_to_deploy(config, checkpoint, deploy_dir, image=val_images[0] if val_images else None, log=log)
    lap('convert')

    deploy_cfg = osp.join(deploy_dir, 'deploy_config.py')
    result.metrics['deploy form'] = test(cfg_for(deploy_cfg, 'test_deploy_form'),
                                         osp.join(deploy_dir, 'deploy.pth'))
    lap('test (deploy form)')

    model = init_segmentor(deploy_cfg, osp.join(deploy_dir, 'deploy.pth'))
    infer_to_dir(model, val_images, osp.join(work_dir, 'overlays'))
    lap('overlays')

    labels = sorted(glob.glob(osp.join(data_root, 'gtFine', 'val', '*', '*_gtFine_labelTrainIds.png')))
    result.baseline_miou = majority_class_miou(labels)
    return result


def format_result(result: DemoResult) -> str:
    """The summary table the demo prints."""
    lines = ['', f'RepSeg demo: PSPNet-RepVGG-A0 on the embedded sample dataset ({result.work_dir})',
             f'{"form":<14}{"mIoU":>8}{"mAcc":>8}{"aAcc":>8}']
    for form, metrics in result.metrics.items():
        lines.append(f'{form:<14}' + ''.join(f'{metrics.get(k, float("nan")):>8.2f}' for k in ('mIoU', 'mAcc', 'aAcc')))
    lines.append(f'{"majority class":<14}{result.baseline_miou:>8.2f}   (the most frequent class everywhere)')
    lines.append('time: ' + ', '.join(f'{k} {v:.0f} s' for k, v in result.seconds.items())
                 + f'; total {sum(result.seconds.values()) / 60:.1f} min')
    lines.append(f'overlays: {osp.join(result.work_dir, "overlays")}; deploy model: '
                 f'{osp.join(result.work_dir, "deploy")}')
    return '\n'.join(lines)


__all__ = ['DemoResult', 'format_result', 'majority_class_miou', 'run_demo']

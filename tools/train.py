"""Train a segmentor with mmengine's Runner.

    python tools/train.py configs/pspnet_repvgg_b2.py                     # one process (CPU or one GPU)
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch  # 8 GPUs (the paper's 8 x 2 images)
    srun -p PARTITION -N 2 --ntasks-per-node 8 python tools/train.py CONFIG --launcher slurm
"""
import argparse
import os

from mmengine.config import DictAction

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.engine import load_config, run_cli, train


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a RepSeg/MMSegmentation segmentor')
    parser.add_argument('config', help='config file, e.g. configs/pspnet_repvgg_b2.py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', action='store_true', help='continue the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    train(cfg, resume=args.resume, amp=args.amp)


if __name__ == '__main__':
    run_cli(main)

"""Evaluate a checkpoint: mIoU, mAcc, aAcc and per-class IoU; optionally labelId PNGs and the official evaluator.

    python tools/test.py configs/pspnet_repvgg_b2.py work_dirs/pspnet_repvgg_b2/iter_7440.pth --cityscapes-official
"""
import argparse
import os

from mmengine.config import DictAction

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.engine import load_config, run_cli, test


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a RepSeg/MMSegmentation segmentor')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir', help='where the test log goes (default: work_dirs/<config name>)')
    parser.add_argument('--out', help='write predictions as Cityscapes labelId PNGs into this folder')
    parser.add_argument('--show-dir', help='write prediction overlays into this folder')
    parser.add_argument('--cityscapes-official', action='store_true',
                        help="also grade the labelId PNGs with cityscapesscripts' pixel-level evaluation")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    test(cfg, args.checkpoint, out_dir=args.out, show_dir=args.show_dir, cityscapes_official=args.cityscapes_official)


if __name__ == '__main__':
    run_cli(main)

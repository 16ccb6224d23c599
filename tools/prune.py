"""Prune a trained RepVGG segmentor's plain (deploy) form, or its train form, to fewer multiply-adds, with proof.

    python tools/prune.py CONFIG CHECKPOINT --out-dir DIR (--target-gmacs G | --ratio R) [--shape H W]
    python tools/train.py DIR/pruned_config.py --work-dir WORK   # fine-tune (load_from is DIR/pruned.pth)

Whole output channels of the 3x3 convs go, with the input channels they fed (through groups, into the PSP head) and
the heads' own channels, by Torch-Pruning's DependencyGraph. A train-form checkpoint is converted first (with the
converter's proof), unless --form train prunes it as it is (BNs kept; convert_to_deploy.py after fine-tuning).
DIR gets pruned_config.py, pruned.pth and pruning.json, or nothing (see docs/pruning.md).
"""
import argparse

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.engine import run_cli
from repseg.engine.cli import add_shape_arg
from repseg.pruning import FORMS, IMPORTANCE, prune


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Prune the plain form of a trained RepVGG segmentor')
    parser.add_argument('config', help='the training config (or a deploy config)')
    parser.add_argument('checkpoint', help='the trained checkpoint (train or deploy form)')
    parser.add_argument('--out-dir', required=True, help='new folder for pruned_config.py, pruned.pth, pruning.json')
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument('--target-gmacs', type=float, help='GMACs to reach at --shape (within 2%%, at most this)')
    goal.add_argument('--ratio', type=float, help='share of the GMACs to remove (0.3 removes 30%%)')
    add_shape_arg(parser, 'input size the GMACs are counted at')
    parser.add_argument('--importance', default='l2', choices=list(IMPORTANCE),
                        help='which channels go: smallest L2 (default) or L1 norm, or random')
    parser.add_argument('--form', default='deploy', choices=list(FORMS),
                        help='prune the plain form (default; fine-tune at about a tenth of the lr) or the train form '
                             '(keeps BN and the recipe\'s lr; stage-tied widths; convert after fine-tuning)')
    parser.add_argument('--round-to', type=int, default=16,
                        help='kept widths are multiples of this (default 16: what CPU kernels like)')
    parser.add_argument('--force', action='store_true', help='replace an --out-dir that holds files (whole)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    prune(args.config, args.checkpoint, args.out_dir, target_gmacs=args.target_gmacs, ratio=args.ratio,
          shape=args.shape, importance=args.importance, round_to=args.round_to, form=args.form,
          force=args.force)


if __name__ == '__main__':
    run_cli(main)

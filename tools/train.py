"""Train a segmentor with mmengine's Runner.

    python tools/train.py configs/pspnet_repvgg_b2.py                     # one process (CPU or one GPU)
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch  # 8 GPUs (the paper's 8 x 2 images), NCCL
    torchrun --nproc_per_node 2 tools/train.py CONFIG --launcher pytorch  # 2 CPU processes (gloo, synchronized BN)
    srun -p PARTITION -N 2 --ntasks-per-node 8 python tools/train.py CONFIG --launcher slurm
"""
import argparse

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.engine import add_runner_args, load_config, parse_runner_args, run_cli, train


def main() -> None:
    parser = argparse.ArgumentParser(description='Train a RepSeg/MMSegmentation segmentor')
    parser.add_argument('config', help='config file, e.g. configs/pspnet_repvgg_b2.py')
    parser.add_argument('--resume', action='store_true', help='continue the latest checkpoint in the work dir')
    parser.add_argument('--load-from', help='start from the weights of this checkpoint (checked: it must fit the '
                                            'config; not resumed: iterations and optimizer start afresh)')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (CUDA only)')
    add_runner_args(parser)
    args = parse_runner_args(parser)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.load_from:
        cfg.load_from = args.load_from
    train(cfg, resume=args.resume, amp=args.amp)


if __name__ == '__main__':
    run_cli(main)

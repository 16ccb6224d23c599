"""Evaluate a checkpoint: mIoU, mAcc, aAcc and per-class IoU; optionally labelId PNGs and the official evaluator.

    python tools/test.py configs/pspnet_repvgg_b2.py work_dirs/pspnet_repvgg_b2/iter_7440.pth --cityscapes-official
    torchrun --nproc_per_node 2 tools/test.py CONFIG CHECKPOINT --launcher pytorch   # each image counted once
    python tools/test.py DIR/deploy_config.py DIR/deploy.pth --runtime eager   # plain PyTorch, not this CPU's fastest

Figures are the model's own precision by default (--runtime native): fp32 for a float checkpoint, the folder's for a
tools/quantize.py folder; the printed results and the saved JSON name the runtime and precision behind them.
"""
import argparse

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.engine import add_runner_args, load_config, parse_runner_args, run_cli, test
from repseg.engine.cli import add_out_dir_arg
from repseg.runtime import AUTO, NATIVE, RUNTIMES


def main() -> None:
    parser = argparse.ArgumentParser(description='Test a RepSeg/MMSegmentation segmentor')
    parser.add_argument('config', help='the config the checkpoint was trained (or converted, quantized) with')
    parser.add_argument('checkpoint', help='the checkpoint to evaluate')
    add_out_dir_arg(parser, 'write predictions as Cityscapes labelId PNGs into this new folder', required=False,
                    old='--out')
    parser.add_argument('--force', action='store_true', help='empty an --out-dir folder that holds files first')
    parser.add_argument('--show-dir', help='write prediction overlays into this folder')
    parser.add_argument('--cityscapes-official', action='store_true',
                        help="also grade the labelId PNGs with cityscapesscripts' pixel-level evaluation")
    parser.add_argument('--runtime', default=NATIVE, choices=[NATIVE, AUTO, *RUNTIMES],
                        help='runtime for the network (default native: the fastest for this CPU in the model\'s own '
                             'precision, fp32 or a quantized folder\'s; auto: possibly bf16, docs/benchmark.md; '
                             'eager: plain PyTorch). The results name the runtime and precision')
    add_runner_args(parser)
    args = parse_runner_args(parser)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    test(cfg, args.checkpoint, out_dir=args.out_dir, show_dir=args.show_dir,
         cityscapes_official=args.cityscapes_official, runtime=args.runtime, force=args.force)


if __name__ == '__main__':
    run_cli(main)

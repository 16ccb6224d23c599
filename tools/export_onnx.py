"""Export a deploy-form segmentor to ONNX, check it with onnxruntime against PyTorch and time both.

    python tools/convert_to_deploy.py CONFIG CHECKPOINT --out-dir DIR          # first: export needs the deploy form
    python tools/export_onnx.py DIR/deploy_config.py DIR/deploy.pth --out DIR/model.onnx --shape 512 1024

Input: the preprocessed (normalized) 1x3xHxW image; output: the decode head's logits at 1/8 of H and W, not
upsampled (--upsample: bilinear to HxW). Static shape. Needs onnx and onnxruntime (the deploy extra);
see docs/deploy.md.
"""
import argparse

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.deploy import export_onnx
from repseg.engine import run_cli
from repseg.engine.cli import add_shape_arg
from repseg.utils import check_out_file


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a deploy-form segmentor to ONNX, checked and timed')
    parser.add_argument('config', help='the deploy config (DIR/deploy_config.py from tools/convert_to_deploy.py)')
    parser.add_argument('checkpoint', help='the deploy checkpoint (DIR/deploy.pth)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--force', action='store_true', help='replace --out if it exists')
    add_shape_arg(parser, 'static input size')
    parser.add_argument('--upsample', action='store_true', help='output logits upsampled to the input size')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per runtime (median reported)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    check_out_file(args.out, args.force)
    export_onnx(args.config, args.checkpoint, args.out, shape=args.shape, upsample=args.upsample,
                repeats=args.repeats)


if __name__ == '__main__':
    run_cli(main)

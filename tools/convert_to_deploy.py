"""Convert a trained RepVGG segmentor to the deploy form (plain 3x3 conv backbone, heads unchanged), with proof.

    python tools/convert_to_deploy.py CONFIG CHECKPOINT --out-dir DIR [--image PATH] [--atol X]
    python tools/test.py DIR/deploy_config.py DIR/deploy.pth        # the same mIoU as the training checkpoint

Both models run in eval mode on a fixed random input (and on --image through the test pipeline); above the
tolerance, or for an invalid checkpoint, nothing is written and the exit status is 2. See docs/deploy.md.
"""
import argparse

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.deploy import AlreadyDeployed, convert_to_deploy
from repseg.engine import run_cli
from repseg.engine.cli import add_shape_arg
from repseg.utils import LOGIT_RTOL, MIN_AGREEMENT


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Re-parameterize a trained segmentor\'s RepVGG backbone')
    parser.add_argument('config', help='the training config')
    parser.add_argument('checkpoint', help='the trained checkpoint (runner checkpoint or state dict)')
    parser.add_argument('--out-dir', required=True, help='new folder for deploy.pth and deploy_config.py')
    parser.add_argument('--force', action='store_true', help='replace an --out-dir that holds files (whole)')
    parser.add_argument('--image', help='also compare on this image, through the config\'s test pipeline')
    parser.add_argument('--atol', type=float,
                        help=f'absolute tolerance on the max logit difference (default: {LOGIT_RTOL:g} x max |logit|)')
    parser.add_argument('--rtol', type=float, default=LOGIT_RTOL,
                        help='relative tolerance used when --atol is not given')
    parser.add_argument('--min-agreement', type=float, default=100 * MIN_AGREEMENT,
                        help=f'minimum argmax agreement in percent of pixels (default {100 * MIN_AGREEMENT:g})')
    add_shape_arg(parser, 'size of the fixed random input')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        convert_to_deploy(args.config, args.checkpoint, args.out_dir, image=args.image, atol=args.atol,
                          rtol=args.rtol, min_agreement=args.min_agreement / 100, shape=args.shape,
                          force=args.force)
    except AlreadyDeployed as msg:
        print(msg)


if __name__ == '__main__':
    run_cli(main)

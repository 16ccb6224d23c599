"""Generate the sample dataset: procedural street scenes in the Cityscapes layout, for the CPU demo and tests.

    python tools/make_sample_data.py --out-dir data/sample --shape 256 512

The defaults (40 train / 10 val at 256x512) take a few seconds to write and leave a CPU demo most of its time for
training; the scenes are not Cityscapes and numbers on them say nothing about Cityscapes.
"""
import argparse

from repseg.datasets.sample_dataset import make_sample_dataset
from repseg.engine import run_cli
from repseg.engine.cli import DeprecatedSpelling, add_out_dir_arg, add_shape_arg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out', nargs='?', help='deprecated spelling of --out-dir')
    add_out_dir_arg(parser, 'output folder, e.g. data/sample (new, empty, or an earlier sample dataset)',
                    required=False)
    parser.add_argument('--num-train', type=int, default=40, help='training images (default: 40)')
    parser.add_argument('--num-val', type=int, default=10, help='validation images (default: 10)')
    add_shape_arg(parser, 'image height and width', default=(256, 512))
    parser.add_argument('--size', type=int, nargs=2, metavar=('W', 'H'), action=DeprecatedSpelling,
                        preferred='--shape H W', help='deprecated: width and height; use --shape H W')
    parser.add_argument('--seed', type=int, default=0, help='same seed, same files byte for byte (default: 0)')
    args = parser.parse_args()
    if args.out:
        DeprecatedSpelling(['--out-dir'], 'out_dir')(parser, args, args.out, 'a positional output folder')
    if not args.out_dir:
        parser.error('the following arguments are required: --out-dir')
    height, width = args.shape if args.size is None else args.size[::-1]
    print(make_sample_dataset(args.out_dir, args.num_train, args.num_val, (width, height), args.seed).format())


if __name__ == '__main__':
    run_cli(main)

"""Generate the sample dataset: procedural street scenes in the Cityscapes layout, for the CPU demo and tests.

The defaults (40 train / 10 val at 512x256) take a few seconds to write and leave a CPU demo most of its time for
training; the scenes are not Cityscapes and numbers on them say nothing about Cityscapes.
"""
import argparse
import sys

from repseg.datasets.sample_dataset import make_sample_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out', help='output folder, e.g. data/sample (new, empty, or an earlier sample dataset)')
    parser.add_argument('--num-train', type=int, default=40, help='training images (default: 40)')
    parser.add_argument('--num-val', type=int, default=10, help='validation images (default: 10)')
    parser.add_argument('--size', type=int, nargs=2, default=(512, 256), metavar=('W', 'H'),
                        help='image width and height (default: 512 256)')
    parser.add_argument('--seed', type=int, default=0, help='same seed, same files byte for byte (default: 0)')
    args = parser.parse_args()
    try:
        summary = make_sample_dataset(args.out, args.num_train, args.num_val, tuple(args.size), args.seed)
    except (ValueError, OSError) as err:
        sys.exit(f'error: {err}')
    print(summary.format())


if __name__ == '__main__':
    main()

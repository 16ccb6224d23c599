"""Make Cityscapes' *_gtFine_labelTrainIds.png (19 classes, 255 ignore) from the *_gtFine_polygons.json files.

Run once after unpacking leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip into DATA_ROOT (see
data/README.md); maps already there are kept unless --force.
"""
import argparse
import os
import sys

from repseg.datasets.cityscapes_prep import prepare_cityscapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('data_root', help='Cityscapes root, e.g. data/cityscapes')
    parser.add_argument('--nproc', type=int, default=min(8, os.cpu_count() or 1),
                        help='worker processes (default: min(8, CPUs))')
    parser.add_argument('--force', action='store_true', help='convert again even where a map exists')
    args = parser.parse_args()
    try:
        summary = prepare_cityscapes(args.data_root, nproc=args.nproc, force=args.force)
    except (ValueError, OSError) as err:
        sys.exit(f'error: {err}')
    print(f'{args.data_root}: {summary.converted} labelTrainIds maps written, {summary.skipped} already present'
          + ('' if summary.converted else ' (nothing to do; --force converts again)'))


if __name__ == '__main__':
    main()

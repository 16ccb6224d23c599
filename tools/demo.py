"""The main job on the embedded default: generate the sample dataset, train PSPNet-RepVGG-A0 on the CPU, evaluate,
convert to the deploy form, evaluate again and write overlays. `make demo` runs it."""
import argparse

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.demo import SAMPLE_CONFIG, format_result, run_demo
from repseg.engine import run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--work-dir', default='work_dirs/demo', help='each run goes into a new timestamped subfolder')
    parser.add_argument('--data-root', default='data/sample', help='sample dataset (generated when missing)')
    parser.add_argument('--config', default=SAMPLE_CONFIG, help=f'the config to train (default: {SAMPLE_CONFIG})')
    parser.add_argument('--max-iters', type=int, default=0, help='shorten training (0: as in the config)')
    args = parser.parse_args()
    print(format_result(run_demo(args.work_dir, args.data_root, args.config, args.max_iters)))


if __name__ == '__main__':
    run_cli(main)

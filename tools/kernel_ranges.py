"""Per-layer range diagnostics of a segmentor's fused (deploy) kernels: why int8 loses accuracy where it does.

    python tools/kernel_ranges.py CONFIG CHECKPOINT [--top 10] [--out ranges.json]

Works on train-form checkpoints (the kernels are fused on a copy; the table then also says which branch, 3x3, 1x1
or identity BN, sets each block's largest weight) and on deploy-form ones. Figures: docs/quantization.md.
"""
import argparse
import json

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.apis import init_segmentor
from repseg.engine import run_cli
from repseg.models.kernel_ranges import format_report, range_report
from repseg.utils.io import atomic_write


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Range diagnostics of the fused kernels')
    parser.add_argument('config', help='the config of the checkpoint (train or deploy form)')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('--top', type=int, default=10, help='layers shown, worst per-tensor int8 error first')
    parser.add_argument('--out', help='also write the full report as JSON')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    report = range_report(init_segmentor(args.config, args.checkpoint, runtime='eager'))
    print(format_report(report, args.top))
    if args.out:
        with atomic_write(args.out, 'w') as handle:
            json.dump(report, handle, indent=1)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    run_cli(main)

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
from repseg.models.kernel_ranges import range_report
from repseg.utils.io import atomic_write


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Range diagnostics of the fused kernels')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--top', type=int, default=10, help='layers shown, worst per-tensor int8 error first')
    parser.add_argument('--out', help='also write the full report as JSON')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    report = range_report(init_segmentor(args.config, args.checkpoint))
    layers = sorted(report['layers'], key=lambda r: -r['int8_error_per_tensor'])[:args.top]
    print(f'{"layer":<40} {"max/std":>8} {"ch max/std":>10} {"ch spread":>9} {"int8 err/tensor":>15} '
          f'{"int8 err/channel":>16}')
    for r in layers:
        print(f'{r["name"]:<40} {r["max_over_std"]:8.1f} {r["channel_max_over_std_worst"]:10.1f} '
              f'{r["channel_range_spread"]:9.1f} {100 * r["int8_error_per_tensor"]:14.2f}% '
              f'{100 * r["int8_error_per_channel"]:15.2f}%')
    for key, value in report['summary'].items():
        if isinstance(value, dict):
            print(f'{key}: median {value["median"]:.4g}, worst {value["worst"]:.4g} ({value["worst_layer"]})')
    branches = report.get('branches', [])
    if branches:
        counts = {}
        for block in branches:
            counts[block['largest_at_max']] = counts.get(block['largest_at_max'], 0) + 1
        print('branch setting each block\'s largest fused weight: '
              + ', '.join(f'{k} {v}' for k, v in sorted(counts.items())) + f' (of {len(branches)} blocks)')
    if args.out:
        with atomic_write(args.out, 'w') as handle:
            json.dump(report, handle, indent=1)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    run_cli(main)

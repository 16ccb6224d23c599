"""The speed/accuracy plot: a tools/benchmark.py run's fastest runtime per precision of each model against its
validation mIoU (a number, or training work dirs whose last validation is read; several are averaged).

    python tools/speed_accuracy.py work_dirs/realtime_bench/benchmark.json \
        --accuracy dualrepvgg-s_2xb6-120k_cityscapes-1024x1024=work_dirs/s_seed0,work_dirs/s_seed1 \
        ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024=28.5,29.1 --out work_dirs/speed_accuracy.png

Models are named as the benchmark names them (its table's first column). Prints the points as a Markdown table and
writes the plot (and, with --table, the table) whole or not at all. See docs/realtime.md.
"""
import argparse
import json

from repseg.benchmark.frontier import frontier_markdown, frontier_points, frontier_title, parse_accuracy, plot_frontier
from repseg.engine import run_cli
from repseg.utils.io import atomic_write


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Speed/accuracy plot from a benchmark run and validation mIoU')
    parser.add_argument('benchmark', help="a tools/benchmark.py run's benchmark.json")
    parser.add_argument('--accuracy', nargs='+', required=True, metavar='MODEL=SOURCES',
                        help='per model: MODEL=SOURCE[,SOURCE...], each SOURCE an mIoU or a training work dir')
    parser.add_argument('--out', required=True, help='the plot (.png) to write')
    parser.add_argument('--table', help='also write the points as a Markdown table to this file')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        with open(args.benchmark) as handle:
            recs = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f'{args.benchmark}: not a readable benchmark.json ({err})') from None
    if not isinstance(recs, list) or not all(isinstance(r, dict) and 'model' in r for r in recs):
        raise ValueError(f'{args.benchmark}: expected the list of records tools/benchmark.py writes')
    points = frontier_points(recs, [parse_accuracy(spec) for spec in args.accuracy])
    table = frontier_markdown(points)
    print(table, end='')
    plot_frontier(points, args.out, title=frontier_title(points))
    print(f'wrote {args.out}')
    if args.table:
        with atomic_write(args.table, 'w') as handle:
            handle.write(table)
        print(f'wrote {args.table}')


if __name__ == '__main__':
    run_cli(main)

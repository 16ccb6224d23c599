"""Print the accuracy and kernel-range tables of int8 folders (tools/quantize.py or QAT runs) as markdown.

    python tools/quantization_table.py work_dirs/int8/a0 work_dirs/int8/r18 --labels A0 R18
    python tools/quantization_table.py DIR_A DIR_B ... --combined     # accuracy and kernel figures in one table
"""
import argparse

import repseg  # noqa: F401  (mmcv-lite compat)
from repseg.engine import run_cli
from repseg.quantization.report import load_report, tables


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='markdown tables of quantization.json reports')
    parser.add_argument('reports', nargs='+', help='int8 folders or their quantization.json files')
    parser.add_argument('--labels', nargs='+', help='a row label per report (default: the paths)')
    parser.add_argument('--combined', action='store_true',
                        help='one table with the accuracy and the kernel-range figures of each report')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    labels = args.labels or args.reports
    if len(labels) != len(args.reports):
        raise ValueError(f'--labels: {len(labels)} label(s) for {len(args.reports)} report(s); expected one each')
    print(tables([(label, load_report(path)) for label, path in zip(labels, args.reports)],
                 combined=args.combined))


if __name__ == '__main__':
    run_cli(main)

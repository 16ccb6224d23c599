"""Speed, peak memory and efficiency of the RepVGG PSPNets (train and deploy form) against MMSegmentation's
ResNet PSPNets (conv-BN fused), interleaved in one run; writes DIR/benchmark.{json,md,png}.

    python tools/benchmark.py --shape 713 713 --out-dir work_dirs/benchmark      # the paper's size (default 512x1024)
    python tools/benchmark.py --shape 257 257 --repeats 5 --runtime eager,onnxruntime --out-dir /tmp/bench
    python tools/benchmark.py --configs configs/pspnet_repvgg_a0.py --shape 65 65 --repeats 1 --out-dir /tmp/b
    python tools/benchmark.py --runtime onnxruntime,openvino,openvino_int8 --out-dir work_dirs/benchmark_int8
    python tools/benchmark.py --configs DIR/int8_config.py --out-dir /tmp/q   # a tools/quantize.py folder, as written
    python tools/benchmark.py --device cuda:1 --shape 713 713 --out-dir /tmp/gpu1   # eager on the second GPU

Every row has a precision (fp32, bf16, int8) and every ratio is taken within one or names it, the 3x3-conv ceiling
included. openvino_int8 quantizes each model with NNCF on crops of a street frame; openvino_bf16 needs a CPU with
avx512_bf16 or amx_bf16. --profile: where one call of each OpenVINO network spends its time. See docs/benchmark.md.
"""
import argparse
import os
import shlex
import sys

from repseg.benchmark import BACKBONE_CHOICES, DEFAULT_CONFIGS, INT8_RUNTIMES, run_benchmark, write_reports
from repseg.engine import run_cli
from repseg.engine.cli import add_out_dir_arg, add_shape_arg
from repseg.runtime import RUNTIMES
from repseg.utils import atomic_dir, check_out_dir, cpu_isa, machine_name


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Benchmark RepVGG PSPNets against ResNet PSPNets')
    parser.add_argument('--configs', nargs='+', default=list(DEFAULT_CONFIGS),
                        help='segmentor configs; RepVGG ones run in train and deploy form, a tools/quantize.py '
                             'folder\'s DIR/int8_config.py or DIR/bf16_config.py as written (OpenVINO), others as '
                             'fused baselines')
    add_shape_arg(parser, 'input size')
    parser.add_argument('--batch', type=int, default=1, help='images per timed call (default: 1)')
    parser.add_argument('--repeats', type=int, default=5, help='timed calls per model, interleaved across models')
    parser.add_argument('--warmup', type=int, default=1, help='untimed calls per model before timing')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (on a GPU only eager runs; the models '
                                                        'are then measured one after another)')
    parser.add_argument('--runtime', default=None,
                        help='comma-separated, for deploy and baseline forms (train runs eager): '
                             + ', '.join([*RUNTIMES, *sorted(INT8_RUNTIMES)])
                             + ' (default: eager,onnxruntime on the CPU, eager on a GPU)')
    parser.add_argument('--backbone', default='auto', choices=BACKBONE_CHOICES,
                        help='deploy backbones also measured alone, for the 3x3-conv ceiling ratio: auto (the first '
                             'RepVGG config), all, none')
    parser.add_argument('--threads', type=int, default=None, help='intra-op threads (default: all CPUs)')
    parser.add_argument('--sequential', action='store_true',
                        help='measure the models one after another, each alone (the default on a GPU); by default '
                             'the CPU interleaves their timed calls')
    parser.add_argument('--profile', action='store_true',
                        help='after the timed calls, profile one call of each OpenVINO network and of the ceiling '
                             '(PERF_COUNT: time by layer type and by kernel; benchmark.md "Where the time goes")')
    add_out_dir_arg(parser, 'new output folder for benchmark.json/.md/.png and logs/', old='--out')
    parser.add_argument('--force', action='store_true', help='replace an --out-dir folder that holds files (whole)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch
    check_out_dir(args.out_dir, args.force)  # before the measurement; again when the folder is moved into place
    with atomic_dir(args.out_dir, args.force) as tmp:  # worker logs, then the reports, all or nothing
        recs = run_benchmark(args.configs, str(tmp), shape=tuple(args.shape), batch=args.batch, repeats=args.repeats,
                             device=args.device, runtimes=args.runtime and args.runtime.split(','),
                             backbone=args.backbone,
                             warmup=args.warmup, threads=args.threads, profile=args.profile,
                             sequential=args.sequential or None,
                             log=lambda m: print(m, file=sys.stderr))
        threads = recs[0]['threads'] if recs else args.threads
        machine = torch.cuda.get_device_name(args.device) if args.device.startswith('cuda') else machine_name()
        for rec in recs:
            rec['machine'] = machine
        meta = dict(machine=machine, device=args.device, shape=args.shape, batch=args.batch, repeats=args.repeats,
                    threads=threads, torch=torch.__version__, cpu_isa=cpu_isa(),
                    command='python ' + ' '.join(shlex.quote(a) for a in sys.argv))
        names = [path.name for path in write_reports(recs, str(tmp), meta)]
    for name in names:
        print(os.path.join(args.out_dir, name))


if __name__ == '__main__':
    run_cli(main)

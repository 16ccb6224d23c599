"""tools/speed_accuracy.py and repseg.benchmark.frontier: each model's fastest runtime per precision from a benchmark
run against the mean of its runs' last validation mIoU; the plot and table written; bad input one line, nothing
written."""
import json
from pathlib import Path

import pytest
from conftest import REPO, run_tool_in_process

from repseg.benchmark.frontier import final_miou, frontier_points, parse_accuracy

ISA = {'int8': 'amx', 'bf16': True, 'class': 'AMX', 'flags': ['avx2', 'amx_int8']}


def rec(model: str, runtime: str, precision: str, ms: float, form: str = 'deploy', part: str = 'model') -> dict:
    return dict(model=model, form=form, runtime=runtime, precision=precision, part=part, latency_ms=ms,
                images_per_s=1000 / ms, shape=[512, 1024], cpu_isa=ISA)


RECS = [rec('fast', 'eager', 'fp32', 300), rec('fast', 'onnxruntime', 'fp32', 100),
        rec('fast', 'eager', 'fp32', 400, form='train'), rec('fast', 'openvino_int8', 'int8', 40),
        rec('fast', 'onnxruntime', 'fp32', 50, part='backbone'),
        rec('peer', 'onnxruntime', 'fp32', 150, form='baseline'),
        rec('peer', 'openvino_int8', 'int8', 60, form='baseline'),
        dict(model='broken', form='baseline', runtime='onnxruntime', precision='fp32', part='model', error='x')]


def work_dir(root: Path, *mious: float) -> Path:
    """A training work dir as mmengine writes it: an older run, then the latest with its validations."""
    for stamp, values in (('20260101_000000', [1.0]), ('20260102_000000', mious)):
        log = root / stamp / 'vis_data' / 'scalars.json'
        log.parent.mkdir(parents=True)
        lines = [json.dumps({'loss': 1.2, 'iter': 50, 'step': 50})]
        lines += [json.dumps({'aAcc': 80.0, 'mIoU': m, 'step': 1000 * (i + 1)}) for i, m in enumerate(values)]
        log.write_text('\n'.join(lines) + '\n')
    return root


def test_points_take_each_precisions_fastest_end_to_end_row_and_the_mean_miou(tmp_path):
    assert final_miou(work_dir(tmp_path / 'a', 20.0, 31.5)) == 31.5  # the latest run's last validation
    acc = [parse_accuracy(f'fast={tmp_path / "a"},32.5'), parse_accuracy('peer=30')]
    points = frontier_points(RECS, acc)
    got = {(p['model'], p['precision']): (p['runtime'], p['ms'], p['miou']) for p in points}
    assert got == {('fast', 'fp32'): ('onnxruntime', 100, 32.0), ('fast', 'int8'): ('openvino_int8', 40, 32.0),
                   ('peer', 'fp32'): ('onnxruntime', 150, 30.0), ('peer', 'int8'): ('openvino_int8', 60, 30.0)}


def test_tool_writes_plot_and_table(tmp_path):
    bench = tmp_path / 'benchmark.json'
    bench.write_text(json.dumps(RECS))
    out = run_tool_in_process('speed_accuracy.py', bench, '--accuracy', f'fast={work_dir(tmp_path / "a", 31.0)}',
                              'peer=30,31', '--out', tmp_path / 'plot.png', '--table', tmp_path / 'points.md',
                              cwd=REPO)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith('| fast') or line.startswith('| peer')]
    assert rows[0].startswith('| fast | int8 | openvino_int8 | 40.0 | 31.00 |') and len(rows) == 4
    assert (tmp_path / 'plot.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert (tmp_path / 'points.md').read_text().splitlines()[2] == rows[0]


@pytest.mark.parametrize('accuracy, message', [
    (['nothing=1'], "--accuracy nothing: not a model measured in the benchmark run (measured: fast, peer)"),
    (['fast'], "--accuracy 'fast': expected MODEL=MIOU_OR_WORK_DIR"),
    (['fast=NOWHERE'], 'NOWHERE: no validation mIoU logged'),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, accuracy, message):
    bench = tmp_path / 'benchmark.json'
    bench.write_text(json.dumps(RECS))
    out = run_tool_in_process('speed_accuracy.py', bench, '--accuracy', *accuracy, '--out', tmp_path / 'plot.png',
                              cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / 'plot.png').exists()


def test_a_file_that_is_not_a_benchmark_run_is_one_line(tmp_path):
    bad = tmp_path / 'benchmark.json'
    bad.write_text('{"model": 1}')
    out = run_tool_in_process('speed_accuracy.py', bad, '--accuracy', 'fast=1', '--out', tmp_path / 'p.png',
                              cwd=tmp_path)
    assert out.returncode == 2 and 'expected the list of records tools/benchmark.py writes' in out.stderr

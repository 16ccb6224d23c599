"""The speed/accuracy frontier: each measured model's fastest runtime per precision (a ``tools/benchmark.py`` run)
against its validation mIoU (training work dirs, mean over seeds), as points, a table and a plot."""
import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

from repseg.utils.io import atomic_write
from .models import PRECISIONS
from .suite import fastest


def final_miou(work_dir: Union[str, Path]) -> float:
    """The last validation mIoU a training run logged (mmengine's ``TIMESTAMP/vis_data/scalars.json``, latest run)."""
    logs = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    values = [json.loads(line)['mIoU'] for log in logs[-1:] for line in log.read_text().splitlines()
              if line.strip() and '"mIoU"' in line]
    if not values:
        raise ValueError(f'{work_dir}: no validation mIoU logged (expected TIMESTAMP/vis_data/scalars.json with an '
                         f'"mIoU" entry, as tools/train.py writes)')
    return float(values[-1])


def parse_accuracy(spec: str) -> Dict[str, Any]:
    """``MODEL=SOURCE[,SOURCE...]``, each SOURCE a number (mIoU) or a training work dir: {model, mious, sources}."""
    model, sep, sources = spec.partition('=')
    if not sep or not model or not sources:
        raise ValueError(f'--accuracy {spec!r}: expected MODEL=MIOU_OR_WORK_DIR[,MIOU_OR_WORK_DIR...]')
    mious = []
    for source in sources.split(','):
        try:
            mious.append(float(source))
        except ValueError:
            mious.append(final_miou(source))
    return dict(model=model, mious=mious, sources=sources.split(','))


def frontier_points(recs: Sequence[Dict[str, Any]], accuracy: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One point per model and precision: the precision's fastest runtime in the run, end to end, against the mean
    mIoU. A model the run did not measure end to end is an error naming the models it did."""
    measured = sorted({r['model'] for r in recs if r.get('part') == 'model' and 'latency_ms' in r})
    points = []
    for acc in accuracy:
        if acc['model'] not in measured:
            raise ValueError(f'--accuracy {acc["model"]}: not a model measured in the benchmark run (measured: '
                             f'{", ".join(measured) or "none"})')
        forms = [r['form'] for r in recs if r['model'] == acc['model'] and r.get('part') == 'model']
        form = 'deploy' if 'deploy' in forms else forms[0]
        for precision in PRECISIONS:
            best = fastest(recs, acc['model'], form, 'model', precision)
            if best:
                points.append(dict(model=acc['model'], precision=precision, runtime=best['runtime'],
                                   ms=best['latency_ms'], miou=statistics.mean(acc['mious']), mious=acc['mious'],
                                   cpu_isa=best.get('cpu_isa', ''), shape=best['shape']))
    return points


def frontier_markdown(points: Sequence[Dict[str, Any]]) -> str:
    lines = ['| model | precision | runtime | ms | mIoU (mean) | mIoU per run |', '|---|---|---|---|---|---|']
    lines += [f'| {p["model"]} | {p["precision"]} | {p["runtime"]} | {p["ms"]:.1f} | {p["miou"]:.2f} | '
              f'{" / ".join(f"{m:.2f}" for m in p["mious"])} |' for p in sorted(points, key=lambda p: p['ms'])]
    return '\n'.join(lines) + '\n'


def frontier_title(points: Sequence[Dict[str, Any]]) -> str:
    """The input size and the CPU (class and ISA flags) the run measured on, for the plot's title."""
    if not points:
        return ''
    isa = points[0]['cpu_isa'] or {}
    flags = ' '.join(isa.get('flags', []))
    return f'{"x".join(str(v) for v in points[0]["shape"])}, CPU class {isa.get("class", "?")} ({flags})'


def plot_frontier(points: Sequence[Dict[str, Any]], path: Union[str, Path], title: str = '') -> None:
    """ms (log scale) against mIoU, one marker per precision, one colour per model; written whole or not at all."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    markers = {'fp32': 'o', 'bf16': 's', 'int8': '^'}
    models = list(dict.fromkeys(p['model'] for p in points))
    colors = plt.get_cmap('tab10')
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, model in enumerate(models):
        mine = sorted((p for p in points if p['model'] == model), key=lambda p: p['ms'])
        ax.plot([p['ms'] for p in mine], [p['miou'] for p in mine], '-', color=colors(i % 10), alpha=0.4)
        for p in mine:
            ax.plot(p['ms'], p['miou'], markers.get(p['precision'], 'x'), color=colors(i % 10), markersize=8,
                    label=f'{model} {p["precision"]}')
    ax.set_xscale('log')
    ax.set_xlabel('ms per image (fastest runtime of the precision; log scale)')
    ax.set_ylabel('validation mIoU (mean of runs)')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7, loc='best')
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_write(path, 'wb') as handle:
        fig.savefig(handle, format='png', dpi=110)
    plt.close(fig)

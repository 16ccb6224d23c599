"""benchmark.json, benchmark.md and benchmark.png from the records, written atomically."""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from repseg.utils.io import atomic_write


def write_reports(recs: List[Dict[str, Any]], out_dir: str, meta: Dict[str, Any]) -> List[Path]:
    """Write the three files; returns their paths."""
    out = Path(out_dir)
    paths = [out / 'benchmark.json', out / 'benchmark.md', out / 'benchmark.png']
    with atomic_write(paths[0], 'w') as handle:
        json.dump(recs, handle, indent=1)
    with atomic_write(paths[1], 'w') as handle:
        handle.write(markdown(recs, meta))
    with atomic_write(paths[2], 'wb') as handle:
        chart(recs, meta, handle)
    return paths


def _fmt(value: Optional[float], spec: str = '.2f', suffix: str = '') -> str:
    return '-' if value is None else f'{value:{spec}}{suffix}'


def markdown(recs: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    ok = [r for r in recs if 'images_per_s' in r]
    baselines = sorted({b for r in ok for b in r.get('speed_vs_baseline', {})})
    ceiling = next((r['ceiling_gflops_per_s'] for r in ok if 'ceiling_gflops_per_s' in r), None)
    by_rt = next((r['ceiling_gflops_per_s_by_runtime'] for r in ok if 'ceiling_gflops_per_s_by_runtime' in r), {})
    by_rt_s = ', '.join(f'{k} {v:.0f}' for k, v in by_rt.items())
    isa = meta.get('cpu_isa') or {}
    lines = [f'# Benchmark: {meta.get("machine", "")}', '',
             f'{meta.get("device", "cpu")}, input {meta["shape"][0]}x{meta["shape"][1]}, batch {meta["batch"]}, '
             f'{meta["repeats"]} interleaved repeats, {meta.get("threads")} threads, fp32, eval, inference_mode; '
             f'torch {meta.get("torch", "")}; CPU int8 instruction set: {isa.get("int8", "unknown")} '
             f'(flags: {" ".join(isa.get("flags", [])) or "-"}). '
             f'Dense 3x3-conv ceiling (same run, the fastest of: {by_rt_s}): '
             f'{_fmt(ceiling, ".1f")} GFLOP/s. Peak memory: process peak RSS during the timed calls '
             f'(+ the part above what was resident before them).', '',
             '`command`: ' + meta.get('command', ''), '']
    header = ['model', 'form', 'runtime', 'images/s (median, min-max)', 'latency ms', 'peak mem MB (+activ.)',
              'weights MB', 'params M', 'GMACs', 'GFLOP/s', 'of ceiling', 'vs train',
              *[f'vs {b} eager' for b in baselines], 'parity (rel)']
    for part, title in (('model', 'End to end (backbone + PSP head + resize)'), ('backbone', 'Backbone only')):
        rows = [r for r in recs if r.get('part') == part]
        if not rows:
            continue
        lines += [f'## {title}', '', '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
        for r in rows:
            if 'error' in r:
                lines.append(f'| {r["model"]} | {r["form"]} | {r["runtime"]} | failed: {r["error"]} |')
                continue
            par = r.get('parity') or r.get('reparam_parity')
            par_s = '-' if not par else f'{par["max_rel"]:.1e} {"ok" if par["passed"] else "FAIL"}'
            if r.get('reparam_parity') and r.get('parity') is None:
                par_s += ' (vs train)'
            if r.get('int8_parity'):
                held = r['int8_parity']['held_out_frame']
                par_s = f'int8: {held["max_rel"]:.1e}, argmax {100 * held["agreement"]:.1f}% (held-out frame)'
            cells = [r['model'], r['form'], r['runtime'],
                     f'{r["images_per_s"]:.3g} ({r["images_per_s_min"]:.3g}-{r["images_per_s_max"]:.3g})',
                     f'{r["latency_ms"]:.0f}', f'{r["peak_mem_mb"]:.0f} (+{r["peak_mem_delta_mb"]:.0f})',
                     _fmt(r.get('weight_mb'), '.1f'), _fmt(r.get('params_m')), _fmt(r.get('gmacs'), '.1f'),
                     _fmt(r.get('gflops_per_s'), '.1f'),
                     _fmt(None if r.get('ceiling_ratio') is None else 100 * r['ceiling_ratio'], '.0f', '%'),
                     _fmt(r.get('speedup_vs_train'), '.2f', 'x'),
                     *[_fmt(r.get('speed_vs_baseline', {}).get(b), '.2f', 'x') for b in baselines], par_s]
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
    lines += int8_md(recs)
    return '\n'.join(lines) + '\n'


def int8_md(recs: List[Dict[str, Any]]) -> List[str]:
    """The int8 rows against fp32: speed-ups, weight sizes, calibration and parity."""
    rows = [r for r in recs if r.get('int8_parity') and r.get('part') == 'model' and 'images_per_s' in r]
    if not rows:
        return []
    bases = sorted({b for r in rows for b in r.get('speed_vs_baseline_fp32_fastest', {})})
    lines = ['## int8 against fp32', '',
             '| model | runtime | vs own fastest fp32 | ' + ''.join(f'vs {b} fastest fp32 | ' for b in bases)
             + 'weights MB fp32 -> int8 | parity vs fp32 eager, held-out frame | calibration |',
             '|' + '---|' * (6 + len(bases))]
    for r in rows:
        held = r['int8_parity']['held_out_frame']
        cells = [r['model'], r['runtime'],
                 f'{_fmt(r.get("speedup_vs_fp32_fastest"), ".2f", "x")} ({r.get("fp32_fastest_runtime", "-")})',
                 *[_fmt(r.get('speed_vs_baseline_fp32_fastest', {}).get(b), '.2f', 'x') for b in bases],
                 f'{_fmt(r.get("weight_mb_fp32"), ".1f")} -> {_fmt(r.get("weight_mb"), ".1f")}',
                 f'{held["max_rel"]:.2e} of max, argmax {100 * held["agreement"]:.2f}%',
                 r.get('calibration', '-')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines + ['']


def chart(recs: List[Dict[str, Any]], meta: Dict[str, Any], handle) -> None:
    """Images/s and peak memory per model, form and runtime (end to end)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = [r for r in recs if r.get('part') == 'model' and 'images_per_s' in r]
    colors = {'train': '#999999', 'deploy': '#1f77b4', 'baseline': '#d62728', 'int8': '#2ca02c'}
    labels = [f'{r["model"].replace("pspnet_", "")} {r["form"]} {r["runtime"]}' for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * max(len(rows), 4) + 1.5), sharey=True)
    ys = range(len(rows))
    speed = [r['images_per_s'] for r in rows]
    err = [[r['images_per_s'] - r['images_per_s_min'] for r in rows],
           [r['images_per_s_max'] - r['images_per_s'] for r in rows]]
    color = [colors[r['form']] for r in rows]
    axes[0].barh(ys, speed, xerr=err, color=color)
    axes[0].set_xlabel('images/s (median, min-max)')
    axes[1].barh(ys, [r['peak_mem_mb'] for r in rows], color=color)
    axes[1].set_xlabel('peak memory MB')
    axes[0].set_yticks(list(ys))
    axes[0].set_yticklabels(labels, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(f'{meta.get("machine", "")}: {meta["shape"][0]}x{meta["shape"][1]}, batch {meta["batch"]}',
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(handle, format='png', dpi=110)
    plt.close(fig)

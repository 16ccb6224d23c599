"""benchmark.json, benchmark.md and benchmark.png from the records, written atomically."""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from repseg.quantization.report import markdown as table
from repseg.runtime import FOLDER_FORMS
from repseg.utils.io import atomic_write
from .models import PRECISIONS, runtime_precision
from .suite import fastest

#: OpenVINO's name of the float precision a row asks for (``executed_precision``), where it can differ.
OPENVINO_PRECISION = {'fp32': 'f32', 'bf16': 'bf16'}
#: Entries per cell of the "Where the time goes" table.
PROFILE_CELL_TOP = 4


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


def _percent(ratio: Optional[float]) -> str:
    return _fmt(None if ratio is None else 100 * ratio, '.0f', '%')


def ceiling_text(recs: List[Dict[str, Any]]) -> str:
    """The dense 3x3-conv ceiling of each precision measured, with the runtimes it is the fastest of."""
    ceiling = next((r for r in recs if 'ceiling_gflops_per_s_by_runtime' in r), None)
    if ceiling is None:
        return 'Dense 3x3-conv ceiling: not measured.'
    by_rt, by_precision = ceiling['ceiling_gflops_per_s_by_runtime'], ceiling['ceiling_gflops_per_s_by_precision']
    parts = []
    for precision in (p for p in PRECISIONS if p in by_precision):
        runs = ', '.join(f'{k} {v:.0f}' for k, v in by_rt.items() if runtime_precision(k) == precision)
        parts.append(f'{precision} **{by_precision[precision]:.1f}** GFLOP/s ({runs})')
    failed = ''.join(f'; {k} failed: {v}' for k, v in ceiling.get('ceiling_failed', {}).items())
    return (f'Dense 3x3-conv ceiling per precision (same run, the fastest of its runtimes): {", ".join(parts)}{failed}.'
            f' "of ceiling" is each row\'s share of its own precision\'s ceiling.')


def precision_label(rec: Dict[str, Any]) -> str:
    """The row's precision, and what OpenVINO really ran where that differs ('bf16 (ran f32)' without bf16)."""
    executed, asked = rec.get('executed_precision'), OPENVINO_PRECISION.get(rec.get('precision', ''))
    return rec.get('precision', '-') + (f' (ran {executed})' if executed and asked and executed != asked else '')


def _parity_cell(r: Dict[str, Any]) -> str:
    if r.get('int8_parity'):
        held = r['int8_parity']['held_out_frame']
        return f'int8: {held["max_rel"]:.1e}, argmax {100 * held["agreement"]:.1f}% (held-out frame)'
    par = r.get('parity') or r.get('reparam_parity')
    if not par:
        return '-'
    verdict = {True: 'ok', False: 'FAIL', None: 'not judged'}[par['passed']]
    return f'{par["max_rel"]:.1e} {verdict}' + (' (vs train)' if r.get('parity') is None else '')


def _main_row(r: Dict[str, Any], baselines: List[str]) -> List[str]:
    cells = [r['model'], r['form'], r['runtime'], precision_label(r)]
    if 'error' in r:
        return cells + [f'failed: {r["error"]}']
    return cells + [f'{r["images_per_s"]:.3g} ({r["images_per_s_min"]:.3g}-{r["images_per_s_max"]:.3g})',
                    f'{r["latency_ms"]:.0f}', f'{r["peak_mem_mb"]:.0f} (+{r["peak_mem_delta_mb"]:.0f})',
                    _fmt(r.get('weight_mb'), '.1f'), _fmt(r.get('params_m')), _fmt(r.get('gmacs'), '.1f'),
                    _fmt(r.get('gflops_per_s'), '.1f'), _percent(r.get('ceiling_ratio')),
                    _fmt(r.get('speedup_vs_train'), '.2f', 'x'),
                    *[_fmt(r.get('speed_vs_baseline', {}).get(b), '.2f', 'x') for b in baselines], _parity_cell(r)]


def markdown(recs: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    ok = [r for r in recs if 'images_per_s' in r]
    baselines = sorted({b for r in ok for b in r.get('speed_vs_baseline', {})})
    isa = meta.get('cpu_isa') or {}
    lines = [f'# Benchmark: {meta.get("machine", "")}', '',
             f'{meta.get("device", "cpu")}, input {meta["shape"][0]}x{meta["shape"][1]}, batch {meta["batch"]}, '
             f'{meta["repeats"]} interleaved repeats, {meta.get("threads")} threads, eval, inference_mode, the '
             f'precision of each row; torch {meta.get("torch", "")}; CPU class: {isa.get("class", "unknown")}, int8 '
             f'instruction set: {isa.get("int8", "unknown")} (flags: {" ".join(isa.get("flags", [])) or "-"}). '
             f'{ceiling_text(ok)} Peak memory: process peak RSS during the timed calls '
             f'(+ the part above what was resident before them).', '',
             '`command`: ' + meta.get('command', ''), '']
    header = ['model', 'form', 'runtime', 'precision', 'images/s (median, min-max)', 'latency ms',
              'peak mem MB (+activ.)', 'weights MB', 'params M', 'GMACs', 'GFLOP/s', 'of ceiling', 'vs train',
              *[f'vs {b} eager' for b in baselines], 'parity (rel)']
    for part, title in (('model', 'End to end (backbone + head + resize)'), ('backbone', 'Backbone only')):
        rows = [_main_row(r, baselines) for r in recs if r.get('part') == part]
        if rows:
            lines += [f'## {title}', '', table(header, rows), '']
    lines += equal_precision_md(recs) + reduced_md(recs) + profile_md(recs)
    return '\n'.join(lines) + '\n'


def _ratio_runtime(r: Dict[str, Any], ratios: str, runtimes: str, base: str) -> str:
    """'1.23x (openvino)': the ratio to a baseline and the runtime of the baseline it was taken against."""
    ratio = r.get(ratios, {}).get(base)
    return '-' if ratio is None else f'{ratio:.2f}x ({r[runtimes][base]})'


def equal_precision_md(recs: List[Dict[str, Any]]) -> List[str]:
    """RepSeg's models vs the baselines per model and precision, fastest runtime against fastest runtime."""
    ok = [r for r in recs if 'images_per_s' in r and r['part'] == 'model']
    keys = dict.fromkeys((r['model'], r['form'], r['precision']) for r in ok
                         if r['form'] in ('deploy', *FOLDER_FORMS))
    if not keys:
        return []
    bases = sorted({b for r in ok for b in r.get('speed_vs_baseline_same_precision', {})})
    header = ['model', 'form', 'precision', 'fastest runtime', 'images/s',
              *[f'vs {b} {what}' for b in bases for what in ('same precision', 'fastest fp32')], 'of its ceiling']
    rows = []
    for model, form, precision in keys:
        best = fastest(ok, model, form, 'model', precision)
        rows.append([model, form, precision_label(best), best['runtime'], f'{best["images_per_s"]:.3g}',
                     *[cell for b in bases for cell in (
                         _ratio_runtime(best, 'speed_vs_baseline_same_precision', 'baseline_same_precision_runtime', b),
                         _ratio_runtime(best, 'speed_vs_baseline_fp32_fastest', 'baseline_fp32_fastest_runtime', b))],
                     _percent(best.get('ceiling_ratio'))])
    return ['## RepSeg models vs the baselines at equal precision', '',
            'Each model\'s fastest runtime in each precision; "same precision": over the baseline\'s fastest runtime '
            'in that precision; "fastest fp32": over its fastest fp32 runtime (the runtime in brackets).', '',
            table(header, rows), '']


def _reduced_parity(r: Dict[str, Any]) -> str:
    """int8: on the held-out frame; bf16: on the timed (random) input; a folder: in its quantization.json."""
    if r.get('int8_parity'):
        held = r['int8_parity']['held_out_frame']
        return f'{held["max_rel"]:.2e} of max, argmax {100 * held["agreement"]:.2f}% (held-out frame)'
    par = r.get('parity')
    return '-' if not par else f'{par["max_rel"]:.2e} of max, argmax {100 * par["agreement"]:.2f}% (random input)'


def reduced_md(recs: List[Dict[str, Any]]) -> List[str]:
    """Every bf16 and int8 row against fp32: speed-ups, weight sizes, calibration and parity."""
    rows = [r for r in recs if r.get('precision', 'fp32') != 'fp32' and r.get('part') == 'model'
            and 'images_per_s' in r]
    if not rows:
        return []
    bases = sorted({b for r in rows for b in r.get('speed_vs_baseline_fp32_fastest', {})})
    header = ['model', 'form', 'runtime', 'precision', 'vs own fastest fp32', *[f'vs {b} fastest fp32' for b in bases],
              'weights MB fp32 -> this', 'parity vs fp32 eager', 'calibration']
    cells = [[r['model'], r['form'], r['runtime'], precision_label(r),
              f'{_fmt(r.get("speedup_vs_fp32_fastest"), ".2f", "x")} ({r.get("fp32_fastest_runtime", "-")})',
              *[_ratio_runtime(r, 'speed_vs_baseline_fp32_fastest', 'baseline_fp32_fastest_runtime', b) for b in bases],
              f'{_fmt(r.get("weight_mb_fp32"), ".1f")} -> {_fmt(r.get("weight_mb"), ".1f")}',
              _reduced_parity(r), r.get('calibration', '-')] for r in rows]
    return ['## Reduced precision against fp32', '', table(header, cells), '']


def _shares(profile: Dict[str, Any], key: str, top: int = PROFILE_CELL_TOP) -> str:
    """The largest entries of ``profile[key]`` as shares of the profiled call's time."""
    total, times = profile['total_ms'], list(profile[key].items())[:top]
    return ', '.join(f'{name} {100 * ms / total:.0f}%' for name, ms in times) if total else '-'


def profile_md(recs: List[Dict[str, Any]]) -> List[str]:
    """``--profile``: per OpenVINO row, one call's time by layer type and kernel, beside its precision's ceiling's
    kernels (another conv kernel, or time in reorders, is where a model falls short of its ceiling)."""
    rows = [r for r in recs if r.get('profile')]
    if not rows:
        return []
    cells = []
    for r in rows:
        prof, ceiling = r['profile'], r.get('ceiling_profile')
        ceiling_s = '-' if not ceiling else f'({r["ceiling_runtime"]}) {_shares(ceiling, "by_exec_type")}'
        cells.append([r['model'], r['form'], r['runtime'], r['part'], precision_label(r), f'{prof["total_ms"]:.1f}',
                      _shares(prof, 'by_node_type'), _shares(prof, 'by_exec_type'), ceiling_s])
    header = ['model', 'form', 'runtime', 'part', 'precision', 'layers ms', 'by layer type', 'by kernel',
              'ceiling (runtime): by kernel']
    return ['## Where the time goes', '',
            'One profiled call (OpenVINO PERF_COUNT, the model compiled once more): the share of the layers\' summed '
            'time by layer type and by kernel, the largest first.', '', table(header, cells), '']


def chart(recs: List[Dict[str, Any]], meta: Dict[str, Any], handle) -> None:
    """Images/s and peak memory per model, form and runtime (end to end)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = [r for r in recs if r.get('part') == 'model' and 'images_per_s' in r]
    colors = {'train': '#999999', 'deploy': '#1f77b4', 'baseline': '#d62728', 'int8': '#2ca02c', 'bf16': '#9467bd'}
    color, ys = [colors[r['form']] for r in rows], range(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * max(len(rows), 4) + 1.5), sharey=True)
    axes[0].barh(ys, [r['images_per_s'] for r in rows], color=color,
                 xerr=[[r['images_per_s'] - r['images_per_s_min'] for r in rows],
                       [r['images_per_s_max'] - r['images_per_s'] for r in rows]])
    axes[0].set_xlabel('images/s (median, min-max)')
    axes[1].barh(ys, [r['peak_mem_mb'] for r in rows], color=color)
    axes[1].set_xlabel('peak memory MB')
    axes[0].set_yticks(list(ys))
    axes[0].set_yticklabels([f'{r["model"].replace("pspnet_", "")} {r["form"]} {r["runtime"]}' for r in rows],
                            fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(f'{meta.get("machine", "")}: {meta["shape"][0]}x{meta["shape"][1]}, batch {meta["batch"]}',
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(handle, format='png', dpi=110)
    plt.close(fig)

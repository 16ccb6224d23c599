"""Markdown tables from ``quantization.json`` reports (tools/quantize.py and QAT folders), so that the figures in
docs/quantization.md are printed by a command rather than copied by hand."""
import json
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

from .artifacts import REPORT


def load_report(path: Union[str, Path]) -> Dict[str, Any]:
    """The report of a folder (``DIR/quantization.json``) or of a report file."""
    path = Path(path)
    file = path / REPORT if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f'{path}: no {REPORT} (expected a folder written by tools/quantize.py or a QAT run)')
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f'{file}: not a JSON report ({err.msg} at line {err.lineno})') from None


def _mean_agreement(report: Dict[str, Any]) -> str:
    images = report.get('agreement_images') or []
    if not images:
        return '-'
    return f'{100 * sum(i["pixel_agreement"] for i in images) / len(images):.2f}% ({len(images)})'


def accuracy_row(label: str, report: Dict[str, Any]) -> List[str]:
    speed, size = report['speed'], report['weights_bytes']
    return [label, report['method'], f'{report["fp32"]["mIoU"]:.2f}', f'{report["int8"]["mIoU"]:.2f}',
            f'{report["drop"]:.2f}', f'{100 * report["pixel_agreement"]:.2f}%', str(len(report['layers_in_float'])),
            f'{speed["fp32_ms"]:.0f} / {speed["int8_ms"]:.0f} ({speed["speedup"]:.2f}x)',
            f'{size["fp32"] / 2 ** 20:.1f} / {size["int8"] / 2 ** 20:.1f}', _mean_agreement(report)]


ACCURACY_HEADER = ['model', 'method', 'fp32 mIoU', 'int8 mIoU', 'drop', 'pixel agreement',
                   'layers in float', 'ms fp32 / int8', 'weights MB fp32 / int8', 'Cityscapes-frame agreement']


def kernel_row(label: str, report: Dict[str, Any]) -> List[str]:
    summary = report['kernel_ranges']['summary']

    def pair(key: str, scale: float = 1.0, fmt: str = '.1f') -> str:
        item = summary[key]
        return f'{scale * item["worst"]:{fmt}} / {scale * item["median"]:{fmt}}'

    return [label, pair('channel_max_over_std_worst'), pair('channel_range_spread'),
            pair('int8_error_per_tensor', 100, '.2f'), pair('int8_error_per_channel', 100, '.2f'),
            summary['int8_error_per_tensor']['worst_layer']]


KERNEL_HEADER = ['model', 'channel max abs w / std: worst / median layer', 'channel range spread: worst / median',
                 'int8 weight error per tensor, %: worst / median', 'per channel, %: worst / median',
                 'worst layer (per tensor)']


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])


def combined_row(label: str, report: Dict[str, Any]) -> List[str]:
    """Accuracy and kernel figures in one row. A folder whose written model is the fallback also shows the plain PTQ
    figures, so that remedies are compared on what plain PTQ does to each of them."""
    plain = report.get('plain_ptq')
    int8 = f'{report["int8"]["mIoU"]:.2f}'
    if report['method'] == 'accuracy_control' and plain:
        int8 += f' ({len(report["layers_in_float"])} float; plain PTQ {plain["int8"]["mIoU"]:.2f})'
    kernels = kernel_row(label, report)
    return [label, report['method'], f'{report["fp32"]["mIoU"]:.2f}', int8, f'{report["drop"]:.2f}',
            f'{100 * report["pixel_agreement"]:.2f}%', kernels[1], kernels[3], kernels[4]]


COMBINED_HEADER = ['model', 'method', 'fp32 mIoU', 'int8 mIoU', 'drop', 'pixel agreement',
                   'channel max abs w / std: worst / median layer', 'int8 weight error per tensor, %: worst / median',
                   'per channel, %: worst / median']


def tables(reports: Sequence[Tuple[str, Dict[str, Any]]], combined: bool = False) -> str:
    """The accuracy table and the kernel-range table of the labelled reports, or with ``combined`` one table of
    both (the remedies comparison of docs/quantization.md)."""
    if combined:
        return markdown(COMBINED_HEADER, [combined_row(label, r) for label, r in reports])
    return (markdown(ACCURACY_HEADER, [accuracy_row(label, r) for label, r in reports]) + '\n\n'
            + markdown(KERNEL_HEADER, [kernel_row(label, r) for label, r in reports]))

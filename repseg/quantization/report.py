"""``quantization.json`` as a type (PTQ, the accuracy-control fallback, QAT and bf16; the JSON keys are the field
names), and the markdown tables of ``tools/quantization_table.py``."""
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from repseg.runtime import FOLDER_FORMS

#: The version of the fields below; raise it whenever a field is added, removed, renamed or changes meaning.
SCHEMA_VERSION = 2
#: Versions this module reads: version 1 had no ``precision`` and ``bf16`` (int8 only), which default accordingly.
READABLE_VERSIONS = (1, 2)
REPORT = 'quantization.json'
#: 'cast': bf16, the fp32 network compiled with OpenVINO's bf16 inference precision (no calibration).
METHODS = ('ptq', 'accuracy_control', 'qat', 'cast')
PRECISIONS = FOLDER_FORMS  # the precisions a folder (and its report) can have


@dataclass
class Metrics:
    """What ``IoUMetric`` reports on the validation split, in points (as ``tools/test.py`` prints them)."""

    mIoU: float
    mAcc: float
    aAcc: float


@dataclass(kw_only=True)
class QuantizationReport:
    """Everything ``quantization.json`` holds (fields: docs/quantization.md); the nested blocks are plain dicts."""

    schema_version: int = SCHEMA_VERSION
    config: str  # the float config and checkpoint quantized (or fine-tuned)
    checkpoint: str
    method: str  # one of METHODS
    fp32: Metrics
    int8: Optional[Metrics] = None  # the metrics of the reduced-precision model, under its precision's name
    bf16: Optional[Metrics] = None
    precision: str = 'int8'
    drop: float
    pixel_agreement: float
    layers_in_float: List[str]
    layers_int8: int
    calibration: Dict[str, Any]
    validation: Dict[str, Any]
    speed: Dict[str, Any]
    weights_bytes: Dict[str, int]
    backend: Dict[str, Any]
    kernel_ranges: Dict[str, Any]
    versions: Dict[str, str]
    cpu: Dict[str, Any]
    deploy_conversion: Optional[List[Dict[str, Any]]] = None
    agreement_images: List[Dict[str, Any]] = field(default_factory=list)
    max_drop: Optional[float] = None
    plain_ptq: Optional[Dict[str, Any]] = None
    accuracy_control: Optional[Dict[str, Any]] = None
    parity_openvino_fp32_vs_eager: Optional[Dict[str, Any]] = None
    training: Optional[Dict[str, Any]] = None
    parity_openvino_int8_vs_fake_quant: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f'quantization report: method {self.method!r}; expected one of {", ".join(METHODS)}')
        if self.precision not in PRECISIONS or getattr(self, self.precision) is None:
            raise ValueError(f'quantization report: precision {self.precision!r} with its metrics; expected one of '
                             f'{", ".join(PRECISIONS)}')

    @property
    def reduced(self) -> Metrics:
        """The reduced-precision model's metrics."""
        return getattr(self, self.precision)

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> Dict[str, Any]:
        """The part the int8 checkpoint's meta carries."""
        return {k: v for k, v in self.as_dict().items()
                if k in ('schema_version', 'method', 'precision', 'fp32', self.precision, 'drop', 'pixel_agreement',
                         'layers_in_float')}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1) + '\n'


class ReportError(ValueError):
    """A file that is not a quantization report of this schema version; the message is one line naming it."""


def _build(kind: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) as the dataclass ``kind``, and its dataclass fields recursively."""
    if not isinstance(value, dict):
        raise ReportError(f'{where}: expected an object, got {type(value).__name__}')
    fields = {f.name: f for f in dataclasses.fields(kind)}
    missing = [n for n, f in fields.items() if n not in value and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    unknown = sorted(set(value) - set(fields))
    problems = [f'{what} {", ".join(names)}' for what, names in (('missing', missing), ('unknown', unknown)) if names]
    if problems:
        raise ReportError(f'{where}: {"; ".join(problems)}')
    return kind(**{n: _build(_dataclass_of(fields[n].type), v, n) if _dataclass_of(fields[n].type) and v is not None
                   else v for n, v in value.items()})


def _dataclass_of(kind: Any) -> Any:
    """``kind`` itself, or X of ``Optional[X]``, when it is a dataclass; else None."""
    args = [a for a in typing.get_args(kind) if a is not type(None)] if typing.get_origin(kind) is Union else [kind]
    return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else None


def load_report(path: Union[str, Path]) -> QuantizationReport:
    """The report of a folder or report file; ReportError for another schema version or a non-report."""
    path = Path(path)
    file = path / REPORT if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f'{path}: no {REPORT} (expected a folder written by tools/quantize.py or a QAT run)')
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f'{err.msg} at line {err.lineno}' if isinstance(err, json.JSONDecodeError) else 'not UTF-8 text'
        raise ReportError(f'{file}: not a JSON report ({where})') from None
    if not isinstance(data, dict) or 'method' not in data:
        raise ReportError(f'{file}: not a quantization report (expected a JSON object written by tools/quantize.py '
                          f'or a QAT run)')
    version = data.get('schema_version')
    if version not in READABLE_VERSIONS:
        found = 'no schema_version (written before reports were versioned)' if version is None else (
            f'schema version {version!r}')
        raise ReportError(f'{file}: a quantization report of {found}; this RepSeg reads schema versions '
                          f'{", ".join(map(str, READABLE_VERSIONS))} (quantize again to get one)')
    try:
        return _build(QuantizationReport, dict(data, schema_version=SCHEMA_VERSION), 'top level')
    except (ReportError, TypeError, ValueError) as err:
        raise ReportError(f'{file}: not a valid quantization report ({err})') from None


# ---- markdown tables (tools/quantization_table.py) ----

ACCURACY_HEADER = ['model', 'method', 'fp32 mIoU', 'int8 mIoU', 'drop', 'pixel agreement',
                   'layers in float', 'ms fp32 / int8', 'weights MB fp32 / int8', 'Cityscapes-frame agreement']
KERNEL_HEADER = ['model', 'channel max abs w / std: worst / median layer', 'channel range spread: worst / median',
                 'int8 weight error per tensor, %: worst / median', 'per channel, %: worst / median',
                 'worst layer (per tensor)']
COMBINED_HEADER = ACCURACY_HEADER[:6] + [KERNEL_HEADER[1], KERNEL_HEADER[3], KERNEL_HEADER[4]]


def accuracy_row(label: str, report: QuantizationReport) -> List[str]:
    speed, size, images = report.speed, report.weights_bytes, report.agreement_images
    mean = sum(i['pixel_agreement'] for i in images) / len(images) if images else None
    name = report.precision
    reduced = f'{report.reduced.mIoU:.2f}' + ('' if name == 'int8' else f' ({name})')
    return [label, report.method, f'{report.fp32.mIoU:.2f}', reduced, f'{report.drop:.2f}',
            f'{100 * report.pixel_agreement:.2f}%', str(len(report.layers_in_float)),
            f'{speed["fp32_ms"]:.0f} / {speed[name + "_ms"]:.0f} ({speed["speedup"]:.2f}x)',
            f'{size["fp32"] / 2 ** 20:.1f} / {size[name] / 2 ** 20:.1f}',
            f'{100 * mean:.2f}% ({len(images)})' if images else '-']


def kernel_row(label: str, report: QuantizationReport) -> List[str]:
    summary = report.kernel_ranges['summary']

    def pair(key: str, scale: float = 1.0, fmt: str = '.1f') -> str:
        return f'{scale * summary[key]["worst"]:{fmt}} / {scale * summary[key]["median"]:{fmt}}'

    return [label, pair('channel_max_over_std_worst'), pair('channel_range_spread'),
            pair('int8_error_per_tensor', 100, '.2f'), pair('int8_error_per_channel', 100, '.2f'),
            summary['int8_error_per_tensor']['worst_layer']]


def combined_row(label: str, report: QuantizationReport) -> List[str]:
    """Accuracy and kernel figures in one row; the fallback's row also shows the plain PTQ mIoU."""
    row = accuracy_row(label, report)[:6]
    if report.method == 'accuracy_control' and report.plain_ptq is not None:
        row[3] += f' ({len(report.layers_in_float)} float; plain PTQ {report.plain_ptq["int8"]["mIoU"]:.2f})'
    kernels = kernel_row(label, report)
    return row + [kernels[1], kernels[3], kernels[4]]


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])


def tables(reports: Sequence[Tuple[str, QuantizationReport]], combined: bool = False) -> str:
    """The accuracy and kernel-range tables of the labelled reports, or with ``combined`` one table of both."""
    if combined:
        return markdown(COMBINED_HEADER, [combined_row(label, r) for label, r in reports])
    return (markdown(ACCURACY_HEADER, [accuracy_row(label, r) for label, r in reports]) + '\n\n'
            + markdown(KERNEL_HEADER, [kernel_row(label, r) for label, r in reports]))

"""``quantization.json`` as a type: ``QuantizationReport``, written and read by this module for every method (plain PTQ,
the accuracy-control fallback, QAT), and the markdown tables of ``tools/quantization_table.py`` read from it.

The JSON keeps the field names of the dataclasses (docs/quantization.md lists them); ``schema_version`` says which
set of fields a file holds, and ``load_report`` refuses a file of another version, or one that is not a report, in
one line naming the file. Method-specific parts are None where they do not apply (``plain_ptq``,
``accuracy_control`` and ``max_drop`` for PTQ; ``training`` for QAT).
"""
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

#: The version of the fields below; raise it whenever a field is added, removed, renamed or changes meaning.
SCHEMA_VERSION = 1
REPORT = 'quantization.json'
METHODS = ('ptq', 'accuracy_control', 'qat')


@dataclass
class Metrics:
    """What ``IoUMetric`` reports on the validation split, in points (as ``tools/test.py`` prints them)."""

    mIoU: float
    mAcc: float
    aAcc: float


@dataclass
class Int8Result:
    """An int8 model against the fp32 one: metrics, the mIoU drop in points, pixel agreement and the weighted layers
    it keeps in float."""

    int8: Metrics
    drop: float
    pixel_agreement: float
    layers_in_float: List[str]


@dataclass
class AccuracyControl(Int8Result):
    """NNCF's accuracy-aware fallback: its result, the validation images that ranked the layers, and the int8 speed
    of plain PTQ (what the layers kept in float cost)."""

    ranking_subset: int
    speed: Dict[str, float]  # {'plain_ptq_int8_ms': ...}


@dataclass
class Calibration:
    images: int
    split: str
    pipeline: str
    mode: str  # the segmentor's test mode: 'whole' or 'slide' (then one window per image)
    first_images: List[str]


@dataclass
class Validation:
    images: int
    split: str
    runtime: str


@dataclass
class Speed:
    """Median milliseconds of the fp32 and int8 OpenVINO networks at ``shape`` (``repeats`` calls, one warm-up)."""

    shape: List[int]
    fp32_ms: float
    int8_ms: float
    speedup: float
    threads: int
    repeats: int


@dataclass
class WeightBytes:
    """Bytes of the IR constants."""

    fp32: int
    int8: int


@dataclass
class ImageAgreement:
    image: str
    shape: List[int]
    pixel_agreement: float


@dataclass
class Training:
    """The QAT run: its config, iterations and optimizer."""

    config: str
    iterations: Optional[int]
    optimizer: Dict[str, Any]


@dataclass
class QuantizationReport:
    """Everything ``quantization.json`` holds (docs/quantization.md, "quantization.json")."""

    config: str  # the float config and checkpoint quantized (or fine-tuned)
    checkpoint: str
    method: str  # one of METHODS
    fp32: Metrics
    int8: Metrics
    drop: float
    pixel_agreement: float
    layers_in_float: List[str]
    layers_int8: int
    calibration: Calibration
    validation: Validation
    speed: Speed
    weights_bytes: WeightBytes
    backend: Dict[str, Any]
    kernel_ranges: Dict[str, Any]  # repseg.models.kernel_ranges.range_report
    versions: Dict[str, str]
    cpu: Dict[str, Any]
    deploy_conversion: Optional[List[Dict[str, Any]]] = None  # the converter's proof, when it converted
    agreement_images: List[ImageAgreement] = field(default_factory=list)
    # post-training quantization
    max_drop: Optional[float] = None
    plain_ptq: Optional[Int8Result] = None
    accuracy_control: Optional[AccuracyControl] = None
    parity_openvino_fp32_vs_eager: Optional[Dict[str, Any]] = None
    # quantization-aware training
    training: Optional[Training] = None
    parity_openvino_int8_vs_fake_quant: Optional[Dict[str, Any]] = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f'quantization report: method {self.method!r}; expected one of {", ".join(METHODS)}')

    def as_dict(self) -> Dict[str, Any]:
        """The JSON object, ``schema_version`` first."""
        out = dataclasses.asdict(self)
        return {'schema_version': out.pop('schema_version'), **out}

    def summary(self) -> Dict[str, Any]:
        """The part the int8 checkpoint's meta carries."""
        return {k: v for k, v in self.as_dict().items()
                if k in ('schema_version', 'method', 'fp32', 'int8', 'drop', 'pixel_agreement', 'layers_in_float')}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1) + '\n'

    def mean_image_agreement(self) -> Optional[float]:
        """Mean pixel agreement over ``agreement_images`` (None without any)."""
        images = self.agreement_images
        return sum(i.pixel_agreement for i in images) / len(images) if images else None

    def kernel_summary(self) -> Dict[str, Any]:
        return self.kernel_ranges['summary']


class ReportError(ValueError):
    """A file that is not a quantization report of this schema version; the message is one line naming it."""


def _build(kind: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) as ``kind``: dataclasses from objects (recursively), Optional and List of them."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Union:  # Optional[X]
        if value is None:
            return None
        return _build(next(a for a in args if a is not type(None)), value, where)
    if origin in (list, List) and args and dataclasses.is_dataclass(args[0]):
        if not isinstance(value, list):
            raise ReportError(f'{where}: expected a list, got {type(value).__name__}')
        return [_build(args[0], v, f'{where}[{i}]') for i, v in enumerate(value)]
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise ReportError(f'{where}: expected an object, got {type(value).__name__}')
        hints = typing.get_type_hints(kind)
        fields = {f.name: f for f in dataclasses.fields(kind)}
        unknown = sorted(set(value) - set(fields))
        missing = [n for n, f in fields.items() if n not in value and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        problems = ([f'missing {", ".join(missing)}'] if missing else []) + (
            [f'unknown {", ".join(unknown)}'] if unknown else [])
        if problems:
            raise ReportError(f'{where}: {"; ".join(problems)}')
        prefix = '' if where == 'top level' else f'{where}.'
        return kind(**{n: _build(hints[n], v, f'{prefix}{n}') for n, v in value.items()})
    return value


def report_from_dict(data: Any, source: Any = 'report') -> QuantizationReport:
    """The report of a parsed ``quantization.json``; ReportError (one line naming ``source``) for another schema
    version or anything that is not a report."""
    if not isinstance(data, Mapping) or 'method' not in data:
        raise ReportError(f'{source}: not a quantization report (expected a JSON object written by '
                          f'tools/quantize.py or a QAT run)')
    version = data.get('schema_version')
    if version != SCHEMA_VERSION:
        found = ('no schema_version (written before reports were versioned)' if version is None
                 else f'schema version {version!r}')
        raise ReportError(f'{source}: a quantization report of {found}; this RepSeg reads schema version '
                          f'{SCHEMA_VERSION} (quantize again to get one)')
    try:
        return _build(QuantizationReport, data, 'top level')
    except (ReportError, TypeError, ValueError) as err:
        raise ReportError(f'{source}: not a valid quantization report ({err})') from None


def load_report(path: Union[str, Path]) -> QuantizationReport:
    """The report of a folder (``DIR/quantization.json``) or of a report file."""
    path = Path(path)
    file = path / REPORT if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f'{path}: no {REPORT} (expected a folder written by tools/quantize.py or a QAT run)')
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f'{err.msg} at line {err.lineno}' if isinstance(err, json.JSONDecodeError) else 'not UTF-8 text'
        raise ReportError(f'{file}: not a JSON report ({where})') from None
    return report_from_dict(data, file)


# ---- markdown tables (tools/quantization_table.py) ----

ACCURACY_HEADER = ['model', 'method', 'fp32 mIoU', 'int8 mIoU', 'drop', 'pixel agreement',
                   'layers in float', 'ms fp32 / int8', 'weights MB fp32 / int8', 'Cityscapes-frame agreement']
KERNEL_HEADER = ['model', 'channel max abs w / std: worst / median layer', 'channel range spread: worst / median',
                 'int8 weight error per tensor, %: worst / median', 'per channel, %: worst / median',
                 'worst layer (per tensor)']
COMBINED_HEADER = ['model', 'method', 'fp32 mIoU', 'int8 mIoU', 'drop', 'pixel agreement',
                   'channel max abs w / std: worst / median layer', 'int8 weight error per tensor, %: worst / median',
                   'per channel, %: worst / median']


def accuracy_row(label: str, report: QuantizationReport) -> List[str]:
    speed, size, mean = report.speed, report.weights_bytes, report.mean_image_agreement()
    images = f'{100 * mean:.2f}% ({len(report.agreement_images)})' if mean is not None else '-'
    return [label, report.method, f'{report.fp32.mIoU:.2f}', f'{report.int8.mIoU:.2f}', f'{report.drop:.2f}',
            f'{100 * report.pixel_agreement:.2f}%', str(len(report.layers_in_float)),
            f'{speed.fp32_ms:.0f} / {speed.int8_ms:.0f} ({speed.speedup:.2f}x)',
            f'{size.fp32 / 2 ** 20:.1f} / {size.int8 / 2 ** 20:.1f}', images]


def kernel_row(label: str, report: QuantizationReport) -> List[str]:
    summary = report.kernel_summary()

    def pair(key: str, scale: float = 1.0, fmt: str = '.1f') -> str:
        item = summary[key]
        return f'{scale * item["worst"]:{fmt}} / {scale * item["median"]:{fmt}}'

    return [label, pair('channel_max_over_std_worst'), pair('channel_range_spread'),
            pair('int8_error_per_tensor', 100, '.2f'), pair('int8_error_per_channel', 100, '.2f'),
            summary['int8_error_per_tensor']['worst_layer']]


def combined_row(label: str, report: QuantizationReport) -> List[str]:
    """Accuracy and kernel figures in one row. A folder whose written model is the fallback also shows the plain PTQ
    figures, so that remedies are compared on what plain PTQ does to each of them."""
    int8 = f'{report.int8.mIoU:.2f}'
    if report.method == 'accuracy_control' and report.plain_ptq is not None:
        int8 += f' ({len(report.layers_in_float)} float; plain PTQ {report.plain_ptq.int8.mIoU:.2f})'
    kernels = kernel_row(label, report)
    return [label, report.method, f'{report.fp32.mIoU:.2f}', int8, f'{report.drop:.2f}',
            f'{100 * report.pixel_agreement:.2f}%', kernels[1], kernels[3], kernels[4]]


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])


def tables(reports: Sequence[Tuple[str, QuantizationReport]], combined: bool = False) -> str:
    """The accuracy table and the kernel-range table of the labelled reports, or with ``combined`` one table of
    both (the remedies comparison of docs/quantization.md)."""
    if combined:
        return markdown(COMBINED_HEADER, [combined_row(label, r) for label, r in reports])
    return (markdown(ACCURACY_HEADER, [accuracy_row(label, r) for label, r in reports]) + '\n\n'
            + markdown(KERNEL_HEADER, [kernel_row(label, r) for label, r in reports]))

"""``--runtime auto`` and ``--runtime native``: the fastest runtime for this CPU, chosen from a small table of
measurements keyed by the CPU class (``repseg.utils.machine.cpu_class``), not by timing at start-up.

``auto`` (tools/infer.py's default) may compute in reduced precision (bf16) where that keeps the predictions;
``native`` (the default of tools/test.py and ``repseg.apis.init_segmentor``) computes in the model's own precision:
fp32 for a float model, a folder's own for a tools/quantize.py folder, so that an evaluated figure is the model's.

A bf16 runtime is kept only once checked against the row's fp32 runtime on the first input (``CheckedRunner``).
"""
import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

from torch import Tensor

from repseg.utils.logits import compare_logits
from repseg.utils.machine import CPU_CLASSES, cpu_class, has_bf16
from . import registry
from .registry import FOLDER_FORMS, RUNTIMES, Runner

AUTO, NATIVE = 'auto', 'native'
#: The policies that pick a runtime by CPU class, as ``--runtime`` values.
POLICIES = (AUTO, NATIVE)
#: bf16 is kept only when at least this fraction of the first input's pixels keep their fp32 class (a CamVid A0
#: trained 200 iterations kept 99.66% on an AMX Xeon, 2026-12-02).
MIN_BF16_AGREEMENT = 0.99


@dataclass(frozen=True)
class ClassRow:
    """One CPU class: runtimes for float models, fastest first, and the measurement that ranks them."""

    runtimes: Tuple[str, ...]
    evidence: str
    fp32_evidence: str = ''  # what ranks the fp32 runtimes, where ``evidence`` is about a reduced precision

    def evidence_for(self, runtime: str) -> str:
        return self.fp32_evidence if self.fp32_evidence and RUNTIMES[runtime].precision == 'fp32' else self.evidence


_FP32 = ('onnxruntime', 'openvino', 'eager')
_ORT_AVX2 = ('PSPNet-RepVGG-B1g2-fast 713x713 deploy: ONNX Runtime 0.179 vs OpenVINO f32 0.175 images/s (R50-D8 '
             '0.241 vs 0.229), 2-vCPU AVX2-only AMD EPYC, 2026-12-03 (docs/benchmark.md); int8 is faster but needs '
             'tools/quantize.py')
_NOT_MEASURED = ('not measured on this class; ONNX Runtime was the fastest fp32 runtime on every CPU measured '
                 '(docs/benchmark.md)')
#: The choice table (docs/benchmark.md, "Which runtime auto picks"); every class has a row.
AUTO_TABLE: Dict[str, ClassRow] = {
    'AMX': ClassRow(('openvino_bf16', *_FP32),
                    'PSPNet-RepVGG-B1g2-fast 713x713 deploy: OpenVINO bf16 472 ms vs ONNX Runtime fp32 3077 ms '
                    '(6.5x), argmax agreement 99.99%, 2-vCPU Intel Xeon with AMX, 2026-12-02 (docs/benchmark.md)',
                    'PSPNet-RepVGG-B1g2-fast 713x713 deploy: ONNX Runtime 3048 ms vs OpenVINO f32 3380 ms, 2-vCPU '
                    'Intel Xeon with AMX, 2026-12-06 (docs/benchmark.md)'),
    'AVX-512 BF16': ClassRow(('openvino_bf16', *_FP32),
                             'PSPNet-RepVGG-B1g2-fast 713x713 deploy: OpenVINO bf16 2604 ms vs ONNX Runtime fp32 '
                             '4636 ms (1.78x), argmax agreement 99.98%; R50-D8 1880 vs 3526 ms; 2-vCPU AMD EPYC Zen 4, '
                             '2026-12-06 (docs/benchmark.md)',
                             'PSPNet-RepVGG-B1g2-fast 713x713 deploy: ONNX Runtime 4636 ms vs OpenVINO f32 4968 ms, '
                             '2-vCPU AMD EPYC Zen 4, 2026-12-06 (docs/benchmark.md)'),
    'AVX-512 VNNI': ClassRow(_FP32, _NOT_MEASURED),
    'AVX-VNNI': ClassRow(_FP32, _NOT_MEASURED),
    'AVX2 only': ClassRow(_FP32, _ORT_AVX2),
    'no AVX2': ClassRow(_FP32, _NOT_MEASURED),
    'unknown': ClassRow(_FP32, 'CPU flags unreadable (not x86 Linux?); ' + _NOT_MEASURED.split('; ', 1)[1]),
}
assert set(AUTO_TABLE) == set(CPU_CLASSES)


@dataclass(frozen=True)
class AutoChoice:
    """What ``policy`` runs and why; ``fallback``: for bf16, the fp32 runtime checked against and fallen back to."""

    runtime: str
    precision: str
    cpu_class: str
    reason: str
    fallback: Optional[str] = None
    policy: str = AUTO

    def line(self) -> str:
        check = (f'; checked against {self.fallback} (fp32) on the first input, kept at >= '
                 f'{100 * MIN_BF16_AGREEMENT:g}% argmax agreement' if self.fallback else '')
        return (f'runtime {self.policy}: {self.runtime} ({self.precision}) for this {self.cpu_class} CPU{check} '
                f'[{self.reason}]')


def choose_runtime(form: str, device: str = 'cpu', flags: Optional[Sequence[str]] = None,
                   policy: str = AUTO) -> AutoChoice:
    """The runtime ``policy`` runs a model of ``form`` on ``device`` with (``flags``: the CPU's, default this one's)."""
    if policy not in POLICIES:
        raise ValueError(f'runtime policy {policy!r}: expected one of {", ".join(POLICIES)}')
    flags = registry.cpu_flags() if flags is None else flags  # the registry's: where tests simulate other CPUs
    return dataclasses.replace(_choose(form, device, flags, cpu_class(flags), policy), policy=policy)


def _choose(form: str, device: str, flags: Sequence[str], klass: str, policy: str) -> AutoChoice:
    if form in FOLDER_FORMS:
        ran = form if form != 'bf16' or has_bf16(flags) else 'f32'
        return AutoChoice('openvino', ran, klass, f'a tools/quantize.py folder runs in its own precision ({form})'
                          + ('' if ran == form else '; this CPU has no bf16, so OpenVINO computes it in f32'))
    if not device.startswith('cpu'):
        return AutoChoice('eager', 'fp32', klass, f'the model is on {device}, where only eager PyTorch runs')
    if form == 'train':
        return AutoChoice('eager', 'fp32', klass, 'train-form models run as trained; convert with '
                                                  'tools/convert_to_deploy.py for the deploy runtimes')
    row = AUTO_TABLE[klass]
    ranked = [name for name in row.runtimes if policy == AUTO or RUNTIMES[name].precision == 'fp32']
    offered = [name for name in ranked if RUNTIMES[name].offered(flags) and form in RUNTIMES[name].forms]
    runtime = offered[0]  # eager is in every row and always offered
    reason = row.evidence_for(runtime) if runtime == ranked[0] else (
        f'{ranked[0]} would be first on this class but is not installed or offered here')
    if policy == NATIVE:
        reason = "the model's own precision (fp32); " + reason
    precision = RUNTIMES[runtime].precision
    fallback = next((n for n in offered if RUNTIMES[n].precision == 'fp32'), None) if precision != 'fp32' else None
    return AutoChoice(runtime, precision, klass, reason, fallback)


class CheckedRunner:
    """Runs ``reduced`` (bf16) if its first input kept ``MIN_BF16_AGREEMENT`` of ``fp32``'s argmax, else ``fp32``."""

    def __init__(self, reduced: Runner, fp32: Runner, choice: AutoChoice, log: Callable[[str], None]):
        self.reduced, self.fp32, self.choice, self.log = reduced, fp32, choice, log
        self.kept: Optional[bool] = None

    def __call__(self, x: Tensor) -> Tensor:
        if self.kept is not None:
            return (self.reduced if self.kept else self.fp32)(x)
        out, reference = self.reduced(x), self.fp32(x)
        agreement = compare_logits(f'{self.choice.runtime} vs {self.choice.fallback}, first input', reference, out,
                                   rtol=None).agreement
        self.kept = agreement >= MIN_BF16_AGREEMENT
        share = (f'{self.choice.precision} kept the fp32 class of {"" if self.kept else "only "}'
                 f'{100 * agreement:.2f}% of the first input\'s pixels')
        self.log(f'runtime auto: {share}; running {self.choice.runtime}' if self.kept else
                 f'runtime auto: {share} (< {100 * MIN_BF16_AGREEMENT:g}%); running {self.choice.fallback} (fp32) '
                 f'instead')
        return out if self.kept else reference

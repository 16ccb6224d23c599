"""The deploy runtimes, and for which models: eager PyTorch (the reference, any device), ONNX Runtime (the fastest
fp32 runtime on the CPUs measured), OpenVINO in fp32 (also the runtime of the tools/quantize.py folders) and OpenVINO
in bf16 (offered only on CPUs with native bf16: elsewhere OpenVINO would run it in f32 without a word). TorchScript,
channels-last, the oneDNN Graph fuser and Inductor were retired: slower on every CPU measured (docs/benchmark.md).
PyTorch's own bf16 (CPU autocast) is not offered: no machine measured it faster than OpenVINO's. ``cpu_flags`` as
imported here is the one place tests replace to simulate another CPU.
"""
import importlib.util
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from torch import Tensor, nn

from repseg.utils.machine import BF16_FLAGS, cpu_flags, describe_flags
from .onnx import prepare_onnxruntime
from .openvino_runtime import prepare_openvino, prepare_openvino_bf16

Runner = Callable[[Tensor], Tensor]
#: 'train' and 'deploy' (RepVGG), 'baseline' (other float segmentors), and tools/quantize.py folders in their precision.
FOLDER_FORMS = ('int8', 'bf16')
FORMS = ('train', 'deploy', 'baseline', *FOLDER_FORMS)


@dataclass(frozen=True)
class Runtime:
    """One runtime; ``shape_generic``: one prepared network takes any input shape; ``needs_flags``: CPU flags of which
    it needs one (empty: any CPU)."""

    name: str
    prepare: Callable[[nn.Module, Tensor], Runner]
    forms: FrozenSet[str]
    devices: FrozenSet[str]
    shape_generic: bool
    precision: str = 'fp32'
    package: Optional[str] = None
    needs_flags: Tuple[str, ...] = ()

    def installed(self) -> bool:
        return self.package is None or importlib.util.find_spec(self.package) is not None

    def offered(self, flags: Optional[Sequence[str]] = None) -> bool:
        """Installed, and the CPU (``flags``, default this one's) has what it needs."""
        flags = cpu_flags() if flags is None else flags
        return self.installed() and (not self.needs_flags or any(f in flags for f in self.needs_flags))


_FLOAT = frozenset({'train', 'deploy', 'baseline'})
RUNTIMES: Dict[str, Runtime] = {r.name: r for r in (
    Runtime('eager', lambda model, example: model, frozenset(FORMS), frozenset({'cpu', 'cuda'}), shape_generic=True),
    Runtime('onnxruntime', prepare_onnxruntime, _FLOAT, frozenset({'cpu'}), shape_generic=False,
            package='onnxruntime'),
    Runtime('openvino', prepare_openvino, _FLOAT | set(FOLDER_FORMS), frozenset({'cpu'}), shape_generic=True,
            package='openvino'),
    Runtime('openvino_bf16', prepare_openvino_bf16, _FLOAT, frozenset({'cpu'}), shape_generic=True,
            precision='bf16', package='openvino', needs_flags=BF16_FLAGS),
)}


def get_runtime(name: str) -> Runtime:
    """The registered runtime ``name``; one-line error naming the choices."""
    if name not in RUNTIMES:
        raise ValueError(f'runtime {name!r}: unknown; expected one of {", ".join(RUNTIMES)}')
    return RUNTIMES[name]


def check_offered(name: str, flags: Optional[Sequence[str]] = None) -> Runtime:
    """The runtime ``name`` if this CPU (``flags``, default this one's) has what it needs; else a one-line error."""
    spec = get_runtime(name)
    flags = cpu_flags() if flags is None else flags
    if not spec.installed():
        raise ModuleNotFoundError(f'runtime {name!r} needs the Python package {spec.package}; install the deploy '
                                  f'extra: pip install -e ".[deploy]"')
    if not spec.offered(flags):
        raise ValueError(f'runtime {name!r} needs a CPU with {" or ".join(spec.needs_flags)}; this is an '
                         f'{describe_flags(flags)}, which offers '
                         f'{", ".join(n for n, r in RUNTIMES.items() if r.offered(flags))}')
    return spec


def check_runtimes(names: Iterable[str], extra: Iterable[str] = ()) -> List[str]:
    """Validate runtime names (``extra``: names a caller handles itself); one-line error for an unknown one or one not
    offered here."""
    names = [n.strip() for n in names if n.strip()]
    known = [*RUNTIMES, *extra]
    for name in names:
        if name not in known:
            raise ValueError(f'runtime {name!r}: unknown; expected one of {", ".join(known)}')
        if name in RUNTIMES:
            check_offered(name)
    if not names:
        raise ValueError(f'no runtime given; expected one or more of {", ".join(known)}')
    return names


def prepare(model: nn.Module, runtime: str, example_input: Optional[Tensor] = None) -> Runner:
    """``model`` (eval mode, ``Tensor -> Tensor``; may be shape-specialized) as an ``images -> logits`` callable in
    ``runtime``; ``example_input`` fixes static runtimes' shape and serves the others' trace."""
    spec = check_offered(runtime)
    if runtime == 'eager':
        return model.eval()
    if example_input is None:
        raise ValueError(f'runtime {runtime!r} needs example_input (a tensor of the input shape)')
    if example_input.device.type not in spec.devices:
        raise ValueError(f'runtime {runtime!r} runs on {", ".join(sorted(spec.devices))} only; got an input on '
                         f'{example_input.device}')
    return spec.prepare(model.eval(), example_input)

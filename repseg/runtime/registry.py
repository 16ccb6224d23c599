"""The deploy runtimes, and for which models: eager PyTorch (the reference, any device), ONNX Runtime (the fastest
fp32 runtime on the CPUs measured) and OpenVINO (also the runtime of the int8 folders). TorchScript, channels-last,
the oneDNN Graph fuser and Inductor were retired: slower on every CPU measured (docs/benchmark.md).

Forms: 'train' and 'deploy' (RepVGG), 'baseline' (other float segmentors), 'int8' (a tools/quantize.py folder).
"""
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional

from torch import Tensor, nn

from .onnx import prepare_onnxruntime
from .openvino_runtime import prepare_openvino

Runner = Callable[[Tensor], Tensor]
FORMS = ('train', 'deploy', 'baseline', 'int8')


@dataclass(frozen=True)
class Runtime:
    """One runtime: its name, how to prepare a module for it, which forms and devices it serves, and whether one
    prepared network takes any input shape (else it is prepared once per shape)."""

    name: str
    prepare: Callable[[nn.Module, Tensor], Runner]
    forms: FrozenSet[str]
    devices: FrozenSet[str]
    shape_generic: bool


_FLOAT = frozenset({'train', 'deploy', 'baseline'})
RUNTIMES: Dict[str, Runtime] = {r.name: r for r in (
    Runtime('eager', lambda model, example: model, frozenset(FORMS), frozenset({'cpu', 'cuda'}), shape_generic=True),
    Runtime('onnxruntime', prepare_onnxruntime, _FLOAT, frozenset({'cpu'}), shape_generic=False),
    Runtime('openvino', prepare_openvino, _FLOAT | {'int8'}, frozenset({'cpu'}), shape_generic=True),
)}


def get_runtime(name: str) -> Runtime:
    """The registered runtime ``name``; one-line error naming the choices."""
    if name not in RUNTIMES:
        raise ValueError(f'runtime {name!r}: unknown; expected one of {", ".join(RUNTIMES)}')
    return RUNTIMES[name]


def check_runtimes(names: Iterable[str], extra: Iterable[str] = ()) -> List[str]:
    """Validate runtime names (``extra``: names a caller handles itself); one-line error naming the unknown one."""
    names = [n.strip() for n in names if n.strip()]
    known = [*RUNTIMES, *extra]
    for name in names:
        if name not in known:
            raise ValueError(f'runtime {name!r}: unknown; expected one of {", ".join(known)}')
    if not names:
        raise ValueError(f'no runtime given; expected one or more of {", ".join(known)}')
    return names


def prepare(model: nn.Module, runtime: str, example_input: Optional[Tensor] = None) -> Runner:
    """A callable ``images -> logits`` running the eval-mode ``Tensor -> Tensor`` ``model`` in ``runtime``, to call
    under ``torch.inference_mode()``. ``example_input`` fixes the shape of static-shape runtimes and serves the
    trace of the others; the model may be changed (shape-specialized)."""
    spec = get_runtime(runtime)
    if runtime == 'eager':
        return model.eval()
    if example_input is None:
        raise ValueError(f'runtime {runtime!r} needs example_input (a tensor of the input shape)')
    if example_input.device.type not in spec.devices:
        raise ValueError(f'runtime {runtime!r} runs on {", ".join(sorted(spec.devices))} only; got an input on '
                         f'{example_input.device}')
    return spec.prepare(model.eval(), example_input)

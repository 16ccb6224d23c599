"""The machine's practical ceiling per precision: a dense 3x3 conv stack as large as the dilated stages' layers, timed
interleaved with the models. A bf16 or int8 row is held against its own precision's: the fp32 one would flatter it."""
import math
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from repseg.runtime import RUNTIMES, prepare
from .models import INT8_RUNTIME, prepare_int8, runtime_precision

CEILING_CHANNELS = 512
#: Deep enough that the layout conversions and the input's quantization at the graph's ends are amortized as in a
#: network: with four layers they were 16% of the int8 ceiling's time on AMX (docs/benchmark.md).
CEILING_LAYERS = 12
#: int8: seeded random calibration inputs of this side (ranges do not depend on the size; small maps are quick).
CALIBRATION_INPUTS, CALIBRATION_SIDE = 2, 16


def ceiling_runtimes(requested: Sequence[str], device: str) -> List[str]:
    """Every installed fp32 runtime serving ``device`` (the fastest is the ceiling), then the requested others."""
    kind = device.split(':')[0]
    fp32 = [name for name, spec in RUNTIMES.items()
            if spec.precision == 'fp32' and kind in spec.devices and spec.installed()]
    others = [name for name in dict.fromkeys(requested) if runtime_precision(name) != 'fp32'
              and (kind == 'cpu' if name == INT8_RUNTIME else kind in RUNTIMES[name].devices)]
    return fp32 + others


def conv_stack(channels: int = CEILING_CHANNELS, layers: int = CEILING_LAYERS) -> nn.Module:
    """``layers`` dense 3x3 conv + ReLU, ``channels`` -> ``channels``, seeded (the same weights in every runtime)."""
    torch.manual_seed(0)
    return nn.Sequential(*[m for _ in range(layers)
                           for m in (nn.Conv2d(channels, channels, 3, padding=1, bias=True), nn.ReLU())]).eval()


def ceiling_input(shape: Tuple[int, int], batch: int, device: str) -> Tuple[Tensor, float]:
    """The stack's input, the model input at output stride 8 (at least 64x64: still compute-bound), and its GMACs."""
    h, w = (max(64, math.ceil(s / 8)) for s in shape)
    x = torch.randn(batch, CEILING_CHANNELS, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    return x, CEILING_LAYERS * batch * CEILING_CHANNELS * CEILING_CHANNELS * 9 * h * w / 1e9


def ceiling_network(runtime: str, x: Tensor) -> Callable[[Tensor], Tensor]:
    """The seeded ``conv_stack`` prepared for ``runtime``; int8 is calibrated and traced on small random inputs."""
    stack = conv_stack(x.shape[1])
    if runtime != INT8_RUNTIME:
        return prepare(stack.to(x.device), runtime, x)
    side = CALIBRATION_SIDE
    calibration = [torch.randn(1, x.shape[1], side, side, generator=torch.Generator().manual_seed(seed))
                   for seed in range(1, CALIBRATION_INPUTS + 1)]
    return prepare_int8(stack, calibration[0], calibration)


def ceiling_runtime_by_precision(by_runtime: Dict[str, float]) -> Dict[str, str]:
    """{precision: the runtime that is its ceiling, the fastest of that precision} from {runtime: GFLOP/s}."""
    out: Dict[str, str] = {}
    for runtime, gflops in by_runtime.items():
        precision = runtime_precision(runtime)
        if precision not in out or gflops > by_runtime[out[precision]]:
            out[precision] = runtime
    return out

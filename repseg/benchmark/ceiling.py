"""The machine's practical ceiling: a dense 3x3 convolution as large as the dilated stages' layers.

RepVGG's claim is that its plain 3x3 stack runs near the hardware's 3x3-conv speed. The ceiling is measured in the
same run as the models (its own worker, interleaved with them), so drift and contention hit it alike.
"""
import importlib.util
import math
from typing import Callable, Dict, Tuple

import torch
from torch import Tensor, nn

from repseg.runtime import prepare

CEILING_CHANNELS = 512
CEILING_LAYERS = 4  # a short stack, so that layout conversions at the graph's ends are amortized as in a network
MIN_SPATIAL = 64


def ceiling_shape(shape: Tuple[int, int]) -> Tuple[int, int]:
    """The conv's map size: the input at output stride 8 (90x90 for 713x713), at least 64x64 so small inputs
    still measure a compute-bound conv."""
    return tuple(max(MIN_SPATIAL, math.ceil(s / 8)) for s in shape)


def build_ceiling(shape: Tuple[int, int], batch: int, device: str,
                  channels: int = CEILING_CHANNELS) -> Tuple[Dict[str, Callable[[], Tensor]], float]:
    """Callables running a stack of ``CEILING_LAYERS`` dense 3x3 conv + ReLU layers (stride 1, dilation 1,
    ``channels`` in and out) in every fp32 runtime this machine offers (eager, and on the CPU ONNX Runtime and
    OpenVINO where installed), and the GMACs per call. The ceiling is the fastest of them."""
    h, w = ceiling_shape(shape)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, h, w, generator=gen).to(device)
    fns = {}
    runtimes = ['eager'] + [name for name in ('onnxruntime', 'openvino') if device == 'cpu' and _installed(name)]
    for runtime in runtimes:
        torch.manual_seed(0)
        layer = nn.Sequential(*[m for _ in range(CEILING_LAYERS)
                                for m in (nn.Conv2d(channels, channels, 3, padding=1, bias=True), nn.ReLU())])
        layer = layer.eval().to(device)
        run = prepare(layer, runtime, x)
        fns[runtime] = (lambda run=run: run(x))
    gmacs = CEILING_LAYERS * batch * channels * channels * 9 * h * w / 1e9
    return fns, gmacs


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None

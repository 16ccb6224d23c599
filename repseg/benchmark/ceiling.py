"""The machine's practical ceiling: a dense 3x3 convolution as large as the dilated stages' layers, measured in its
own worker interleaved with the models, so that drift and contention hit it alike."""
import importlib.util
import math
from typing import Callable, Dict, Tuple

import torch
from torch import Tensor, nn

from repseg.runtime import prepare

CEILING_CHANNELS = 512
CEILING_LAYERS = 4  # a short stack, so that layout conversions at the graph's ends are amortized as in a network


def build_ceiling(shape: Tuple[int, int], batch: int, device: str) -> Tuple[Dict[str, Callable[[], Tensor]], float]:
    """Callables running ``CEILING_LAYERS`` dense 3x3 conv + ReLU layers in every fp32 runtime this machine offers,
    and the GMACs per call. The map is the input at output stride 8 (90x90 for 713x713), at least 64x64 so that
    small inputs still measure a compute-bound conv. The ceiling is the fastest runtime."""
    h, w = (max(64, math.ceil(s / 8)) for s in shape)
    channels = CEILING_CHANNELS
    x = torch.randn(batch, channels, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    fns = {}
    runtimes = ['eager'] + [name for name in ('onnxruntime', 'openvino')
                            if device == 'cpu' and importlib.util.find_spec(name) is not None]
    for runtime in runtimes:
        torch.manual_seed(0)
        layer = nn.Sequential(*[m for _ in range(CEILING_LAYERS)
                                for m in (nn.Conv2d(channels, channels, 3, padding=1, bias=True), nn.ReLU())])
        run = prepare(layer.eval().to(device), runtime, x)
        fns[runtime] = (lambda run=run: run(x))
    return fns, CEILING_LAYERS * batch * channels * channels * 9 * h * w / 1e9

"""Multiply-adds per image, counted on a shape-only (meta-device) copy of the model, so counting costs no forward
pass at 713x713. Counted: every Conv2d and Linear (out elements x in-channels/groups x kernel taps), mmengine's
FlopAnalyzer / fvcore convention; its other entries (BN, pooling, resize) are < 0.5% of a PSPNet's count.
"""
import copy
from typing import Dict

import torch
from torch import Tensor, nn


@torch.no_grad()
def layer_macs(model: nn.Module, example: Tensor) -> Dict[str, int]:
    """Multiply-adds of every Conv2d and Linear of ``model`` (by module name) on ``example``'s shape, whole batch."""
    shadow = copy.deepcopy(model).to('meta')
    macs: Dict[str, int] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs, output: Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                taps = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
            else:
                taps = module.in_features
            macs[name] = macs.get(name, 0) + output.numel() * taps
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in shadow.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        shadow(torch.empty(example.shape, dtype=example.dtype, device='meta'))
    finally:
        for handle in handles:
            handle.remove()
    return macs


def count_macs(model: nn.Module, example: Tensor) -> Dict[str, float]:
    """GMACs per image of ``model`` on ``example``'s shape, in total and for its ``backbone`` submodule if any."""
    macs, batch = layer_macs(model, example), example.shape[0]
    out = {'gmacs': sum(macs.values()) / batch / 1e9}
    backbone = next((f'{n}.' for n, _ in model.named_modules() if n.rpartition('.')[2] == 'backbone'), None)
    if backbone:
        out['backbone_gmacs'] = sum(v for n, v in macs.items() if n.startswith(backbone)) / batch / 1e9
    return out

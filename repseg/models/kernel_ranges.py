"""Per-layer range diagnostics of fused (deploy) kernels: why a re-parameterized net loses accuracy in int8.

A symmetric int8 weight quantizer spends its 255 levels on ``[-max|w|, max|w|]``. RepVGG's fusion adds the identity
BN's scale ``gamma / sqrt(var + eps)`` to one centre tap per output channel; near-dead input channels (after a ReLU)
have tiny variances and so huge scales (QARepVGG, Chu et al.): outliers that leave the bulk of the weights a few
levels, which per-tensor quantization cannot absorb and per-channel quantization only partly can.

The int8 errors are the median over output channels of ``||W_c - Q(W)_c|| / ||W_c||``: a typical channel's loss (a
norm over the whole kernel would be dominated by the outlier itself).
"""
import copy
import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping

import torch
from torch import Tensor, nn

from .backbones.reparam_block import is_reparameterizable, reparameterize
from .utils import fuse_conv_bn_pairs

INT8_LEVELS = 127  # symmetric: [-127, 127]


@dataclass
class KernelRange:
    """Range figures of one fused kernel (see the module docstring)."""

    name: str
    shape: List[int]
    max_over_std: float
    channel_max_over_std_worst: float
    channel_max_over_std_median: float
    channel_range_spread: float  # max over channels of max|w_c|, over the median channel's max|w_c|
    int8_error_per_tensor: float  # median over output channels of the channel's relative error
    int8_error_per_channel: float


def quantize_symmetric(weight: Tensor, per_channel: bool, levels: int = INT8_LEVELS) -> Tensor:
    """``weight`` through symmetric int8 quantization (per tensor or output channel, round to nearest), in float."""
    w = weight.detach().double()
    if per_channel:
        amax = w.abs().flatten(1).amax(1).view(-1, *([1] * (w.dim() - 1)))
    else:
        amax = w.abs().max()
    scale = torch.where(amax > 0, amax / levels, torch.ones_like(amax))
    return (torch.clamp(torch.round(w / scale), -levels, levels) * scale).to(weight.dtype)


def channel_error(weight: Tensor, quantized: Tensor) -> float:
    """Median over output channels of ``||W_c - Q_c|| / ||W_c||`` (all-zero channels skipped)."""
    w, q = weight.double().flatten(1), quantized.double().flatten(1)
    norms = w.norm(dim=1)
    keep = norms > 0
    return float(((w - q).norm(dim=1)[keep] / norms[keep]).median()) if keep.any() else 0.0


def kernel_range(name: str, weight: Tensor) -> KernelRange:
    """The figures of one kernel (out_channels x ... ; any conv or linear weight)."""
    w = weight.detach().double()
    flat = w.flatten(1)
    std = float(w.std()) if w.numel() > 1 else 0.0
    ch_max = flat.abs().amax(1)
    ch_std = flat.std(1) if flat.shape[1] > 1 else torch.zeros_like(ch_max)
    ratios = torch.where(ch_std > 0, ch_max / ch_std.clamp_min(1e-30), torch.zeros_like(ch_max))
    median_max = float(ch_max.median())
    return KernelRange(
        name=name, shape=list(weight.shape),
        max_over_std=float(w.abs().max()) / std if std > 0 else 0.0,
        channel_max_over_std_worst=float(ratios.max()), channel_max_over_std_median=float(ratios.median()),
        channel_range_spread=float(ch_max.max()) / median_max if median_max > 0 else float('inf'),
        int8_error_per_tensor=channel_error(w, quantize_symmetric(w, per_channel=False)),
        int8_error_per_channel=channel_error(w, quantize_symmetric(w, per_channel=True)))


def fused_kernels(segmentor: nn.Module) -> Dict[str, Tensor]:
    """The kernels the deployed network multiplies with (fused on a copy, no auxiliary head), by module path."""
    model = copy.deepcopy(segmentor).eval()
    if hasattr(model, 'auxiliary_head'):
        del model.auxiliary_head
    with torch.no_grad():
        reparameterize(model)
        fuse_conv_bn_pairs(model)
    return {name: module.weight.detach().clone() for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear))}


def kernel_ranges(kernels: Mapping[str, Tensor]) -> List[KernelRange]:
    """``kernel_range`` of every kernel, in the given order."""
    return [kernel_range(name, weight) for name, weight in kernels.items()]


def summarize(ranges: List[KernelRange]) -> Dict[str, Any]:
    """Worst layer and median over layers of each figure."""
    out: Dict[str, Any] = {'layers': len(ranges)}
    for key in ('max_over_std', 'channel_max_over_std_worst', 'channel_range_spread', 'int8_error_per_tensor',
                'int8_error_per_channel'):
        worst = max(ranges, key=lambda r: getattr(r, key))
        out[key] = {'worst_layer': worst.name, 'worst': getattr(worst, key),
                    'median': statistics.median(getattr(r, key) for r in ranges)}
    return out


def range_report(segmentor: nn.Module) -> Dict[str, Any]:
    """Per-layer figures of the fused kernels, their summary and (train form) ``branch_ranges``, JSON-ready."""
    ranges = kernel_ranges(fused_kernels(segmentor))
    report = {'summary': summarize(ranges), 'layers': [asdict(r) for r in ranges]}
    branches = branch_ranges(segmentor)
    if branches:
        report['branches'] = branches
    return report


@torch.no_grad()
def branch_ranges(segmentor: nn.Module) -> List[Dict[str, Any]]:
    """For each train-form block: the largest |weight| each branch contributes to the fused kernel (BN folded;
    RepVGG's identity branch's is its largest BN scale, QARepVGG's BN_post's) and which branch sets the fused
    kernel's maximum. Empty for a deploy-form model."""
    out = []
    for name, block in segmentor.named_modules():
        if not is_reparameterizable(block) or block.deploy:
            continue
        parts = {branch: kernel for branch, (kernel, _) in block.branches().items()}
        fused = sum(parts.values())
        flat_index = int(fused.abs().argmax())
        at_max = {k: float(v.flatten()[flat_index].abs()) for k, v in parts.items()}
        out.append({'block': name, **{f'max_{k}': float(v.abs().max()) for k, v in parts.items()},
                    'max_fused': float(fused.abs().max()), 'largest_at_max': max(at_max, key=at_max.get)})
    return out


def format_report(report: Dict[str, Any], top: int = 10) -> str:
    """``range_report`` as text: the ``top`` layers (worst per-tensor int8 error first), summary and branches."""
    lines = [f'{"layer":<40} {"max/std":>8} {"ch max/std":>10} {"ch spread":>9} {"int8 err/tensor":>15} '
             f'{"int8 err/channel":>16}']
    for r in sorted(report['layers'], key=lambda r: -r['int8_error_per_tensor'])[:top]:
        lines.append(f'{r["name"]:<40} {r["max_over_std"]:8.1f} {r["channel_max_over_std_worst"]:10.1f} '
                     f'{r["channel_range_spread"]:9.1f} {100 * r["int8_error_per_tensor"]:14.2f}% '
                     f'{100 * r["int8_error_per_channel"]:15.2f}%')
    for key, value in report['summary'].items():
        if isinstance(value, dict):
            lines.append(f'{key}: median {value["median"]:.4g}, worst {value["worst"]:.4g} ({value["worst_layer"]})')
    branches = report.get('branches', [])
    if branches:
        counts = Counter(block['largest_at_max'] for block in branches)
        lines.append("branch setting each block's largest fused weight: "
                     + ', '.join(f'{k} {v}' for k, v in sorted(counts.items())) + f' (of {len(branches)} blocks)')
    return '\n'.join(lines)

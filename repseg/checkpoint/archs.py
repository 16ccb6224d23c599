"""Which published RepVGG / RepVGGplus arch a state dict fits, from its keys and shapes alone.

The expected key -> shape maps are computed from ``arch_zoo.block_specs`` (the classification layout, stride 2 at
every stage), so no model is built. Grouped variants (B1 / B1g2 / B1g4) share their keys and differ only in the
shapes of the grouped kernels, hence shapes are compared too. ``num_batches_tracked`` is ignored: it is a counter,
not a weight, and some files omit it.
"""
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

from torch import Tensor

from ..models.backbones.arch_zoo import ARCH_SETTINGS, BlockSpec, block_specs, official_name, resolve_arch, table_name
from ..models.backbones.reparam_block import POST_SE_REDUCTION, SE_REDUCTION

Shapes = Dict[str, Tuple[int, ...]]
_IMAGENET_STRIDES, _NO_DILATION = (2, 2, 2, 2, 2), (1, 1, 1, 1, 1)


def _se_shapes(prefix: str, channels: int, reduction: int) -> Shapes:
    mid = channels // reduction
    return {f'{prefix}down.weight': (mid, channels, 1, 1), f'{prefix}down.bias': (mid,),
            f'{prefix}up.weight': (channels, mid, 1, 1), f'{prefix}up.bias': (channels,)}


def _block_shapes(prefix: str, spec: BlockSpec, deploy: bool) -> Shapes:
    cin, cout, groups = spec.in_channels, spec.out_channels, spec.groups
    shapes: Shapes = {}
    if deploy:
        shapes[f'{prefix}rbr_reparam.weight'] = (cout, cin // groups, 3, 3)
        shapes[f'{prefix}rbr_reparam.bias'] = (cout,)
    else:
        bn = [('rbr_dense', 3), ('rbr_1x1', 1)]
        for branch, k in bn:
            shapes[f'{prefix}{branch}.conv.weight'] = (cout, cin // groups, k, k)
            for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
                shapes[f'{prefix}{branch}.bn.{leaf}'] = (cout,)
        if cin == cout and spec.stride == 1:
            for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
                shapes[f'{prefix}rbr_identity.{leaf}'] = (cin,)
    if spec.use_se:
        shapes.update(_se_shapes(f'{prefix}se.', cout, SE_REDUCTION))
    if spec.use_post_se:
        shapes.update(_se_shapes(f'{prefix}post_se.', cout, POST_SE_REDUCTION))
    return shapes


@lru_cache(maxsize=None)
def expected_shapes(arch: str, deploy: bool) -> Shapes:
    """Key -> shape of a published arch's backbone (classification layout), without ``num_batches_tracked``."""
    specs = block_specs(resolve_arch(arch), 3, _IMAGENET_STRIDES, _NO_DILATION)
    shapes: Shapes = {}
    for stage, stage_specs in enumerate(specs):
        for i, spec in enumerate(stage_specs):
            shapes.update(_block_shapes('stage0.' if stage == 0 else f'stage{stage}.{i}.', spec, deploy))
    return shapes


def shape_map(state: Dict[str, Tensor]) -> Shapes:
    return {key: tuple(value.shape) for key, value in state.items() if not key.endswith('num_batches_tracked')}


def mismatches(shapes: Shapes, expected: Shapes) -> List[str]:
    """Human-readable differences: missing, unexpected and wrongly shaped keys, in key order."""
    out = []
    for key in sorted(set(shapes) | set(expected)):
        if key not in shapes:
            out.append(f'missing {key}')
        elif key not in expected:
            out.append(f'unexpected {key}')
        elif shapes[key] != expected[key]:
            out.append(f'{key} has shape {list(shapes[key])}, expected {list(expected[key])}')
    return out


def fitting_archs(state: Dict[str, Tensor], deploy: bool) -> List[str]:
    """Every published arch whose keys and shapes the state dict matches exactly (normally one)."""
    shapes = shape_map(state)
    return [arch for arch in ARCH_SETTINGS if shapes == expected_shapes(arch, deploy)]


def closest_arch(state: Dict[str, Tensor], deploy: bool) -> Tuple[Optional[str], int]:
    """The arch with the fewest mismatches and their count, for error messages."""
    shapes = shape_map(state)
    scored = [(len(mismatches(shapes, expected_shapes(arch, deploy))), arch) for arch in ARCH_SETTINGS]
    count, arch = min(scored)
    return arch, count


def canonical_arch(arch: str) -> str:
    """'RepVGG-B2' -> 'B2', 'RepVGGplus-L2pse' -> 'L2pse', validating the name."""
    return table_name(arch)


def display_name(arch: str) -> str:
    """The official name of a table arch, for messages: 'B2' -> 'RepVGG-B2', 'L2pse' -> 'RepVGGplus-L2pse'."""
    return official_name(arch) if arch in ARCH_SETTINGS else arch


def display_names(archs: List[str]) -> str:
    """'RepVGG-B1/RepVGG-B1g2', for messages naming several archs."""
    return '/'.join(display_name(arch) for arch in archs)

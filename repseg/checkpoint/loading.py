"""Read a RepVGG / RepVGGplus checkpoint of any supported format (``safe_torch_load``) as RepSeg backbone weights,
or load it strictly. The arch is detected from keys and shapes alone (grouped variants such as B1 / B1g2 / B1g4
share their keys), against the published archs built on the meta device; ``num_batches_tracked`` is ignored (some
files omit that counter).
"""
import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import Tensor, nn

from ..models.backbones import PRETRAINED_INIT, RepVGG
from ..models.backbones.arch_zoo import ARCH_SETTINGS, official_name, table_name
from ..models.forms import state_dict_form
from ..utils.io import CheckpointError, PathLike, safe_torch_load, unwrap_state_dict
from .formats import to_repseg_keys
from .fusion import fuse_state_dict
from .qarepvgg_init import to_qarepvgg_state

MAX_LISTED = 10  # offending keys named in one error message
INIT_TYPE = PRETRAINED_INIT
Shapes = Dict[str, Tuple[int, ...]]


def shape_map(state: Dict[str, Tensor]) -> Shapes:
    return {key: tuple(value.shape) for key, value in state.items() if not key.endswith('num_batches_tracked')}


@lru_cache(maxsize=None)
def expected_shapes(arch: str, deploy: bool) -> Shapes:
    """Key -> shape of a published arch's backbone (classification layout), without ``num_batches_tracked``."""
    with torch.device('meta'):
        return shape_map(RepVGG(arch=arch, strides=(2,) * 5, deploy=deploy, out_indices=(4,)).state_dict())


def fitting_archs(state: Dict[str, Tensor], deploy: bool) -> List[str]:
    """Every published arch whose keys and shapes the state dict matches exactly (normally one)."""
    shapes = shape_map(state)
    return [arch for arch in ARCH_SETTINGS if shapes == expected_shapes(arch, deploy)]


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


def display_name(arch: str) -> str:
    """'B2' -> 'RepVGG-B2', 'L2pse' -> 'RepVGGplus-L2pse'; other names as they are."""
    return official_name(arch) if arch in ARCH_SETTINGS else arch


def display_names(archs: List[str]) -> str:
    return '/'.join(map(display_name, archs))


@dataclass
class ImportInfo:
    """What an import found and did, for the log and the tool's report."""
    source: str
    format: str
    source_form: str  # 'train' or 'deploy', as in the file
    form: str  # form of the returned state dict
    arch: Optional[str]
    num_tensors: int
    dropped: List[str] = field(default_factory=list)

    def summary(self) -> str:
        fused = ', fused to deploy' if self.form != self.source_form else ''
        dropped = f'; dropped {len(self.dropped)} ({self.dropped_text()})' if self.dropped else '; dropped nothing'
        return (f'{self.source}: {self.format} format, {self.source_form}-time{fused}, arch '
                f'{self.arch or "custom"}, {self.num_tensors} tensors{dropped}')

    def dropped_text(self) -> str:
        """The dropped keys, or past MAX_LISTED of them their modules with counts: 'linear.* (2), stage1_aux.* (8)'."""
        if len(self.dropped) <= MAX_LISTED:
            return ', '.join(self.dropped)
        modules = Counter(f'{key.split(".")[0]}.*' for key in self.dropped)
        return ', '.join(f'{module} ({count})' for module, count in modules.items())


def _abbrev(keys: List[str], limit: int = MAX_LISTED) -> str:
    return ', '.join(keys[:limit]) + (f', and {len(keys) - limit} more' if len(keys) > limit else '')


def _resolve_arch(state: Dict[str, Tensor], deploy: bool, arch: Optional[str], source: str) -> str:
    fits, shapes = fitting_archs(state, deploy), shape_map(state)
    if arch is None:
        if fits:  # never more than one: the published archs differ in keys or shapes
            return fits[0]
        off = {name: mismatches(shapes, expected_shapes(name, deploy)) for name in ARCH_SETTINGS}
        near = min(off, key=lambda name: (len(off[name]), name))
        raise CheckpointError(f'{source}: keys and shapes fit no published RepVGG arch; closest is '
                              f'{display_name(near)} with {len(off[near])} problems ({_abbrev(off[near], 3)})')
    arch = table_name(arch)
    if arch in fits:
        return arch
    problems = mismatches(shapes, expected_shapes(arch, deploy))
    hint = f'; its keys and shapes fit {display_names(fits)}' if fits else ''
    raise CheckpointError(f'{source}: does not fit {display_name(arch)} ({len(problems)} problems: '
                          f'{_abbrev(problems, 3)}){hint}')


def convert_checkpoint(obj: Any, source: str, arch: Optional[str] = None,
                       to_deploy: bool = False) -> Tuple[Dict[str, Tensor], ImportInfo]:
    """``load_backbone_checkpoint`` of an already loaded checkpoint object."""
    state, fmt, dropped = to_repseg_keys(unwrap_state_dict(obj, source), source)
    form = state_dict_form(state, source)
    arch = _resolve_arch(state, form == 'deploy', arch, source)
    if to_deploy and form == 'train':
        state = fuse_state_dict(state, source)
    return state, ImportInfo(source, fmt, form, 'deploy' if to_deploy else form, arch, len(state), sorted(dropped))


def load_backbone_checkpoint(path: PathLike, arch: Optional[str] = None,
                             to_deploy: bool = False) -> Tuple[Dict[str, Tensor], ImportInfo]:
    """Read an official RepVGG or RepVGGplus, mmpretrain or timm checkpoint (train or deploy form) as RepSeg
    backbone weights: format and arch detected from keys and shapes (``arch`` validates the detection), classifiers
    dropped, a train-form file fused with ``to_deploy``. Raises CheckpointError (one line naming the file)."""
    return convert_checkpoint(safe_torch_load(path), str(path), arch, to_deploy)


def check_fits_backbone(backbone: nn.Module, state: Dict[str, Tensor], source: str,
                        file_archs: List[str]) -> None:
    """Strict comparison with the backbone's own state dict; raises naming up to MAX_LISTED offending keys."""
    problems = mismatches(shape_map(state), shape_map(backbone.state_dict()))
    if problems:
        arch = getattr(backbone, 'arch', None)
        name = table_name(arch) if isinstance(arch, str) else None
        shown = display_name(name) if name else 'custom RepVGG'
        other = [a for a in file_archs if a != name]
        hint = f'; the file fits {display_names(other)}, not {shown}' if other else ''
        raise CheckpointError(f'{source}: does not fit the {shown} backbone, {len(problems)} offending keys: '
                              f'{_abbrev(problems)}{hint}')


def load_pretrained_backbone(backbone: nn.Module, path: PathLike) -> ImportInfo:
    """Load a checkpoint of any supported format into a RepSeg ``RepVGG`` backbone strictly, fused if the backbone is
    deploy-form (a deploy-form file cannot fill a train-form backbone)."""
    source = str(path)
    state, fmt, dropped = to_repseg_keys(unwrap_state_dict(safe_torch_load(path), source), source)
    source_form = state_dict_form(state, source)
    file_archs = fitting_archs(state, source_form == 'deploy')
    deploy = bool(getattr(backbone, 'deploy', False))
    if deploy and source_form == 'train':
        state = fuse_state_dict(state, source)
    elif not deploy and source_form == 'deploy':
        raise CheckpointError(f'{source}: is deploy-time (fused rbr_reparam) but the backbone is train-time; fused '
                              f'weights cannot be split back into branches: build the backbone with deploy=True '
                              f'or use a train-time checkpoint')
    state = to_qarepvgg_state(backbone, state, source)  # QARepVGG blocks from standard RepVGG weights
    check_fits_backbone(backbone, state, source, file_archs)
    # num_batches_tracked: a counter, not a weight; absent from some files
    state = {**{k: v for k, v in backbone.state_dict().items() if k.endswith('num_batches_tracked')}, **state}
    backbone.load_state_dict(state, strict=True)
    info = ImportInfo(source, fmt, source_form, 'deploy' if deploy else 'train',
                      file_archs[0] if len(file_archs) == 1 else None, len(state), sorted(dropped))
    print_log(f'RepVGG: loaded {info.num_tensors} tensors into the backbone from {info.summary()}',
              logger='current', level=logging.INFO)
    return info


@WEIGHT_INITIALIZERS.register_module(name=INIT_TYPE)
class RepSegPretrainedInit:
    """What RepVGG turns its ``Pretrained`` init_cfg into: the loader inside mmengine's ``init_weights``, which keeps
    mmengine's per-parameter init record right."""

    def __init__(self, checkpoint: str, **_ignored):  # map_location / prefix of 'Pretrained': not needed here
        self.checkpoint = checkpoint

    def __call__(self, module: nn.Module) -> None:
        info = load_pretrained_backbone(module, self.checkpoint)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f'loaded by RepSeg from {info.source} ({info.format} format)')

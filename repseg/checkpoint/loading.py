"""Read a RepVGG / RepVGGplus checkpoint of any supported format and turn it into RepSeg backbone weights, or load
it.

Reading is always ``torch.load(weights_only=True)`` (``safe_torch_load``): a file whose pickle would run code is
refused before anything runs. Loading into a backbone is strict: a wrong arch or layout fails loudly, naming keys.
"""
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from mmengine.logging import print_log
from torch import Tensor, nn

from ..models.forms import state_dict_form
from ..utils.io import CheckpointError, PathLike, safe_torch_load, unwrap_state_dict
from .archs import (canonical_arch, closest_arch, display_name, display_names, expected_shapes, fitting_archs,
                    mismatches, shape_map)
from .formats import to_repseg_keys
from .fusion import fuse_state_dict
from .qarepvgg_init import to_qarepvgg_state

MAX_LISTED = 10  # offending keys named in one error message


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
        modules: Dict[str, int] = {}
        for key in self.dropped:
            module = f'{key.split(".")[0]}.*'
            modules[module] = modules.get(module, 0) + 1
        return ', '.join(f'{module} ({count})' for module, count in modules.items())


def _abbrev(keys: List[str], limit: int = MAX_LISTED) -> str:
    more = f', and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def _resolve_arch(state: Dict[str, Tensor], deploy: bool, arch: Optional[str], source: str) -> str:
    fits = fitting_archs(state, deploy)
    if arch is not None:
        arch = canonical_arch(arch)
        if arch in fits:
            return arch
        problems = mismatches(shape_map(state), expected_shapes(arch, deploy))
        hint = f'; its keys and shapes fit {display_names(fits)}' if fits else ''
        raise CheckpointError(f'{source}: does not fit {display_name(arch)} ({len(problems)} problems: '
                              f'{_abbrev(problems, 3)}){hint}')
    if len(fits) == 1:
        return fits[0]
    if fits:  # cannot happen with the published archs; keep the message honest if ARCH_SETTINGS grows
        raise CheckpointError(f'{source}: fits several archs ({", ".join(fits)}); pass --arch')
    near, count = closest_arch(state, deploy)
    problems = mismatches(shape_map(state), expected_shapes(near, deploy))
    raise CheckpointError(f'{source}: keys and shapes fit no published RepVGG arch; closest is {display_name(near)} '
                          f'with {count} problems ({_abbrev(problems, 3)})')


def convert_checkpoint(obj: Any, source: str, arch: Optional[str] = None,
                       to_deploy: bool = False) -> Tuple[Dict[str, Tensor], ImportInfo]:
    """An already loaded checkpoint object -> (RepSeg backbone state dict, ImportInfo); see
    ``load_backbone_checkpoint``."""
    state, fmt, dropped = to_repseg_keys(unwrap_state_dict(obj, source), source)
    form = state_dict_form(state, source)
    arch = _resolve_arch(state, form == 'deploy', arch, source)
    if to_deploy and form == 'train':
        state = fuse_state_dict(state, source)
    info = ImportInfo(source, fmt, form, 'deploy' if to_deploy else form, arch, len(state), sorted(dropped))
    return state, info


def load_backbone_checkpoint(path: PathLike, arch: Optional[str] = None,
                             to_deploy: bool = False) -> Tuple[Dict[str, Tensor], ImportInfo]:
    """Read an official RepVGG or RepVGGplus, mmpretrain or timm checkpoint (train or deploy form) as RepSeg
    backbone weights.

    Unwraps ``state_dict`` / ``model``, strips ``module.`` (and ``backbone.``), detects format and arch from keys
    and shapes (``arch`` validates the detection), drops the classifier (and RepVGGplus's auxiliary classifiers),
    and with ``to_deploy`` fuses a train-form file. Raises CheckpointError (one line naming the file) on anything
    else.
    """
    return convert_checkpoint(safe_torch_load(path), str(path), arch, to_deploy)


def _arch_name(backbone: nn.Module) -> str:
    arch = getattr(backbone, 'arch', None)
    return canonical_arch(arch) if isinstance(arch, str) else 'custom'


def _backbone_name(name: str) -> str:
    return display_name(name) if name != 'custom' else 'custom RepVGG'


def check_fits_backbone(backbone: nn.Module, state: Dict[str, Tensor], source: str,
                        file_archs: List[str]) -> None:
    """Strict comparison with the backbone's own state dict; raises naming up to MAX_LISTED offending keys."""
    own = backbone.state_dict()
    problems = mismatches(shape_map(state), shape_map(own))
    if not problems:
        return
    name = _arch_name(backbone)
    other = [a for a in file_archs if a != name]
    hint = f'; the file fits {display_names(other)}, not {_backbone_name(name)}' if other else ''
    raise CheckpointError(f'{source}: does not fit the {_backbone_name(name)} backbone, {len(problems)} offending '
                          f'keys: {_abbrev(problems)}{hint}')


def load_pretrained_backbone(backbone: nn.Module, path: PathLike) -> ImportInfo:
    """Load a checkpoint of any supported format into a RepSeg ``RepVGG`` backbone, strictly.

    A train-form file is fused when the backbone is deploy-form; a deploy-form file cannot fill a train-form
    backbone (the branches cannot be recovered). Logs how many tensors were loaded.
    """
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
    own = backbone.state_dict()
    for key, value in own.items():  # a counter, not a weight; absent from some files
        if key.endswith('num_batches_tracked') and key not in state:
            state[key] = value
    backbone.load_state_dict(state, strict=True)
    info = ImportInfo(source, fmt, source_form, 'deploy' if deploy else 'train',
                      file_archs[0] if len(file_archs) == 1 else None, len(state), sorted(dropped))
    print_log(f'RepVGG: loaded {info.num_tensors} tensors into the backbone from {info.summary()}',
              logger='current', level=logging.INFO)
    return info

"""The official RepVGG custom L2 (``get_custom_L2``, the ``--custwd`` training flag) and a config switch for it
(derivation, what is covered: docs/quantization.md; the ``identity`` correction follows the discussion in
https://github.com/DingXiaoH/RepVGG/issues/99). Per
train-form block, with t3, t1 the detached BN scales of the 3x3 and 1x1 branches::

    sum(K3^2) - sum(K3c^2) + sum((K3c * t3 + K1 * t1)^2 / (t3^2 + t1^2)),    K3c = K3[:, :, 1:2, 1:2]
"""
import logging
import weakref
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .backbones.repvgg_block import RepVGGBlock
from .utils import bn_scale_shift, identity_kernel

LOSS_KEY = 'loss_custom_l2'
COVERED = ('rbr_dense.conv.weight', 'rbr_1x1.conv.weight')  # the kernels the term regularizes, per block


def _bn_scale(bn: _BatchNorm) -> Tensor:
    """gamma / sqrt(running_var + eps), per channel, detached and shaped (C, 1, 1, 1)."""
    return bn_scale_shift(bn)[0].detach().reshape(-1, 1, 1, 1)


def covered_blocks(model: nn.Module) -> Iterator[Tuple[str, RepVGGBlock]]:
    """(name, block) for every train-form RepVGG block of ``model`` with BNs on both conv branches."""
    return ((name, m) for name, m in model.named_modules() if isinstance(m, RepVGGBlock) and not m.deploy
            and isinstance(getattr(m.rbr_dense, 'bn', None), _BatchNorm)
            and isinstance(getattr(m.rbr_1x1, 'bn', None), _BatchNorm))


def covered_kernels(model: nn.Module) -> Dict[str, nn.Parameter]:
    """Full parameter name -> kernel for every kernel the custom L2 regularizes (``COVERED`` of each block)."""
    kernels = {}
    for name, block in covered_blocks(model):
        for key in COVERED:
            kernels[f'{name}.{key}' if name else key] = block.get_parameter(key)
    return kernels


def block_custom_l2(block: RepVGGBlock, identity: bool = False) -> Tensor:
    """The official per-block term; ``identity=True`` adds the identity branch to the centre tap."""
    k3, k1 = block.rbr_dense.conv.weight, block.rbr_1x1.conv.weight
    t3, t1 = _bn_scale(block.rbr_dense.bn), _bn_scale(block.rbr_1x1.bn)
    centre = k3[:, :, 1:2, 1:2]
    ring = (k3 ** 2).sum() - (centre ** 2).sum()
    eq_centre = centre * t3 + k1 * t1
    if identity and block.rbr_identity is not None:
        tid = _bn_scale(block.rbr_identity)
        eq_centre = eq_centre + tid * identity_kernel(block.in_channels, block.groups, k1)[:, :, 1:2, 1:2]
    return ring + (eq_centre ** 2 / (t3 ** 2 + t1 ** 2)).sum()


def custom_l2(model: nn.Module, identity: bool = False) -> Tensor:
    """The custom L2 summed over the covered blocks of any module (0 if none); use it as
    ``loss + weight_decay * 0.5 * custom_l2(model)`` with the weight decay of ``covered_kernels(model)`` off."""
    terms = [block_custom_l2(block, identity) for _, block in covered_blocks(model)]
    if not terms:
        param = next(model.parameters(), None)
        return torch.zeros((), device=param.device if param is not None else None)
    return torch.stack(terms).sum()


class CustomL2Loss:
    """Forward hook adding ``loss_custom_l2 = coefficient * 0.5 * custom_l2(model)`` to the losses of
    ``forward(..., mode='loss')``, the call mmengine's ``train_step`` makes (plain or under DDP)."""

    def __init__(self, coefficient: float, identity: bool = False):
        self.coefficient, self.identity = float(coefficient), bool(identity)

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, output):
        mode = kwargs.get('mode', args[2] if len(args) > 2 else None)
        if mode != 'loss' or not isinstance(output, dict):
            return None
        if LOSS_KEY in output:
            raise RuntimeError(f'{type(module).__name__} already returns a {LOSS_KEY!r} loss')
        output[LOSS_KEY] = self.coefficient * 0.5 * custom_l2(module, self.identity)
        return output


_HOOKS: 'weakref.WeakKeyDictionary[nn.Module, torch.utils.hooks.RemovableHandle]' = weakref.WeakKeyDictionary()


def add_custom_l2_loss(model: nn.Module, coefficient: float, identity: bool = False) -> CustomL2Loss:
    """Make ``model(..., mode='loss')`` return ``loss_custom_l2`` too; a second call replaces the first."""
    if model in _HOOKS:
        _HOOKS.pop(model).remove()
    hook = CustomL2Loss(coefficient, identity)
    _HOOKS[model] = model.register_forward_hook(hook, with_kwargs=True)
    return hook


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CustomL2OptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """The official ``--custwd``: weight decay off for the covered kernels and ``CustomL2Loss`` on, both or neither
    (a constructor: the only place the Runner gives both the model and the optimizer settings). Options:
    ``paramwise_cfg=dict(custom_l2=dict(coefficient=<the optimizer weight_decay>, identity=False))``."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        options = paramwise_cfg.get('custom_l2') or {}
        if not isinstance(options, dict) or set(options) - {'coefficient', 'identity'}:
            raise ValueError(f'paramwise_cfg.custom_l2={options!r}: expected a dict with optional keys coefficient '
                             f'(float, default: the optimizer weight_decay) and identity (bool)')
        # keeping the key leaves paramwise_cfg non-empty, which makes the parent build per-parameter groups
        paramwise_cfg['custom_l2'] = dict(options)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        coefficient = options.get('coefficient', self.base_wd)
        if not isinstance(coefficient, (int, float)) or isinstance(coefficient, bool) or coefficient <= 0:
            raise ValueError(f'custom L2 needs a positive coefficient, got {coefficient!r}: set the optimizer\'s '
                             f'weight_decay or paramwise_cfg.custom_l2.coefficient')
        self.coefficient = float(coefficient)
        self.identity = bool(options.get('identity', False))
        self._covered: Dict[int, str] = {}

    def __call__(self, model: nn.Module) -> OptimWrapper:
        segmentor = model.module if hasattr(model, 'module') else model
        self._covered = {id(param): name for name, param in covered_kernels(segmentor).items()}
        if not self._covered:
            raise ValueError(f'CustomL2OptimWrapperConstructor: {type(segmentor).__name__} has no train-form RepVGG '
                             f'block with BNs on both conv branches (deploy-form and QARepVGG blocks are not '
                             f'covered); remove the constructor from optim_wrapper')
        optim_wrapper = super().__call__(model)
        add_custom_l2_loss(segmentor, self.coefficient, self.identity)
        print_log(f'custom L2: weight decay off for {len(self._covered)} kernels ({", ".join(COVERED)} of '
                  f'{len(self._covered) // len(COVERED)} RepVGG blocks); {LOSS_KEY} = {self.coefficient:g} * 0.5 * '
                  f'custom_l2(model, identity={self.identity}) added to the training loss',
                  logger='current', level=logging.INFO)
        return optim_wrapper

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module=None) -> None:
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix:  # a recursive call: the groups are finished by the top-level one
            return
        for group in params:
            if id(group['params'][0]) in self._covered:
                group['weight_decay'] = 0.0

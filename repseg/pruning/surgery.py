"""Channel surgery on a deploy-form segmentor with Torch-Pruning's DependencyGraph.

In the plain form a conv's output channels feed only the next conv (through groups, and from the last stage into the
PSP head's pooling branches and the concatenation before its bottleneck), so every width is free. The DependencyGraph
finds what each removal touches; nothing here walks the graph. Widths are cut uniformly (one share of every
prunable conv, kept widths rounded to ``round_to``), the share found by bisection, then topped off, ``round_to``
channels at a time, from the backbone conv that costs most, until the GMACs are at most the target.
"""
import copy
from typing import Callable, Dict, List, Sequence

import torch
import torch_pruning as tp
from torch import Tensor, nn

from repseg.models import SegLogits, layer_macs

#: ``--importance`` choices: how the channels that go are chosen within each group of coupled layers (the group's
#: summed weight norms; random as the baseline a criterion must beat). Torch-Pruning 1.6's FPGM fails on grouped
#: convs (its input-channel branch repeats a 2-D tensor), so it is not offered.
IMPORTANCE: Dict[str, Callable[[], tp.importance.Importance]] = {
    'l2': lambda: tp.importance.GroupMagnitudeImportance(p=2),
    'l1': lambda: tp.importance.GroupMagnitudeImportance(p=1),
    'random': lambda: tp.importance.RandomImportance(),
}
BISECTION_STEPS = 12
_OUT_HANDLERS = (tp.prune_conv_out_channels, tp.prune_batchnorm_out_channels)


def _heads(segmentor: nn.Module) -> List[nn.Module]:
    aux = segmentor.auxiliary_head if segmentor.with_auxiliary_head else []
    return [segmentor.decode_head, *(aux if isinstance(aux, nn.ModuleList) else [aux])]


class _AllHeads(nn.Module):
    """Backbone into every head, the auxiliary one included, so that the graph sees every consumer of a stage."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor

    def forward(self, x: Tensor) -> List[Tensor]:
        feats = self.segmentor.extract_feat(x)
        return [head(feats) for head in _heads(self.segmentor)]


def segmentor_gmacs(segmentor: nn.Module, shape: Sequence[int]) -> float:
    """GMACs of one image at ``shape`` of what inference runs, the deploy form with its decode head, for either form
    (a train-form block's 1x1 branch folds into its 3x3 conv)."""
    macs = layer_macs(SegLogits(segmentor, resize=False), torch.empty(1, 3, *shape))
    return sum(v for name, v in macs.items() if not name.endswith('rbr_1x1.conv')) / 1e9


class _Surgeon:
    """One segmentor's pruning state: its graph, and every removed output channel in the original numbering."""

    def __init__(self, segmentor: nn.Module, importance: str, round_to: int):
        self.segmentor, self.round_to = segmentor.eval(), round_to
        self.importance = IMPORTANCE[importance]()
        self.wrapper = _AllHeads(segmentor)
        self.example = torch.randn(1, 3, 65, 65, generator=torch.Generator().manual_seed(0))
        self.ignored = [head.conv_seg for head in _heads(segmentor)]  # class outputs keep their width
        self.names = {m: n for n, m in segmentor.named_modules()}
        self.kept: Dict[str, List[int]] = {}  # per conv/BN: the original indices of its channels left
        self.removed: Dict[str, List[int]] = {}

    def _record(self, group) -> None:
        for dep, idxs in group:
            if dep.handler in _OUT_HANDLERS:
                name, module = self.names[dep.target.module], dep.target.module
                size = module.out_channels if isinstance(module, nn.Conv2d) else module.num_features
                kept = self.kept.setdefault(name, list(range(size)))
                gone = set(int(i) for i in idxs)
                self.removed.setdefault(name, []).extend(kept[i] for i in sorted(gone))
                self.kept[name] = [k for i, k in enumerate(kept) if i not in gone]
        group.prune()

    def uniform(self, ratio: float) -> None:
        if ratio <= 0:
            return
        pruner = tp.pruner.MetaPruner(self.wrapper, self.example, importance=self.importance, pruning_ratio=ratio,
                                      ignored_layers=self.ignored, round_to=self.round_to)
        for group in pruner.step(interactive=True):
            self._record(group)

    def top_off(self, target: float, shape: Sequence[int]) -> None:
        """Take ``round_to`` more channels at a time from the costliest backbone conv until GMACs <= target."""
        graph = tp.DependencyGraph().build_dependency(self.wrapper, self.example)
        while segmentor_gmacs(self.segmentor, shape) > target:
            macs = layer_macs(SegLogits(self.segmentor, resize=False), torch.empty(1, 3, *shape))
            convs = [(macs.get(f'segmentor.backbone.{n}', 0), m) for n, m in self.segmentor.backbone.named_modules()
                     if isinstance(m, nn.Conv2d) and m.out_channels > 2 * self.round_to]
            if not convs:
                raise ValueError(f'cannot reach {target:.2f} GMACs: every backbone conv is at its narrowest')
            conv = max(convs, key=lambda c: c[0])[1]
            group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, list(range(conv.out_channels)))
            scores = self.importance(group)
            parts = max(m.groups for m in (d.target.module for d, _ in group) if isinstance(m, nn.Conv2d))
            step, per_part = conv.out_channels // parts, max(1, self.round_to // parts)  # equal numbers per group
            idxs = [int(i) + p * step for p in range(parts)
                    for i in torch.argsort(scores[p * step:(p + 1) * step])[:per_part]]
            self._record(graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs))


@torch.no_grad()
def zero_channels(segmentor: nn.Module, removed: Dict[str, List[int]]) -> nn.Module:
    """``segmentor`` with the weights and biases of the ``removed`` output channels set to zero (a BN's scale and
    shift): it computes what the pruned network computes, each such channel being 0 after its ReLU."""
    modules = dict(segmentor.named_modules())
    for name, idxs in removed.items():
        for param in (modules[name].weight, modules[name].bias):
            if param is not None:
                param[idxs] = 0
    return segmentor


def prune_segmentor(segmentor: nn.Module, target_gmacs: float, shape: Sequence[int], importance: str = 'l2',
                    round_to: int = 16, log: Callable[[str], None] = print) -> Dict[str, List[int]]:
    """Prune ``segmentor`` (deploy form) in place to at most ``target_gmacs`` at ``shape``; returns the removed
    output channels of every conv and BN, in their original numbering (what a zeroing check zeroes)."""
    if importance not in IMPORTANCE:
        raise ValueError(f'importance={importance!r}: expected one of {", ".join(IMPORTANCE)}')
    lo, hi = 0.0, 0.9
    for _ in range(BISECTION_STEPS):  # the largest uniform share that keeps GMACs >= target
        mid = (lo + hi) / 2
        trial = _Surgeon(copy.deepcopy(segmentor), importance, round_to)
        trial.uniform(mid)
        lo, hi = (mid, hi) if segmentor_gmacs(trial.segmentor, shape) >= target_gmacs else (lo, mid)
    surgeon = _Surgeon(segmentor, importance, round_to)
    surgeon.uniform(lo)
    log(f'uniform share {lo:.3f}: {segmentor_gmacs(segmentor, shape):.2f} GMACs; topping off to {target_gmacs:.2f}')
    surgeon.top_off(target_gmacs, shape)
    return surgeon.removed

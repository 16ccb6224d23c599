"""Pruning of the plain (deploy) form, or of the train form: whole output channels of the 3x3 convs and what they
feed, with Torch-Pruning's DependencyGraph, written as an ordinary config + checkpoint pair."""
from .prune import FORMS, PRUNED_CHECKPOINT, PRUNED_CONFIG, PRUNING_REPORT, prune, pruned_config
from .surgery import IMPORTANCE, prune_segmentor, segmentor_gmacs, zero_channels

__all__ = ['FORMS', 'IMPORTANCE', 'PRUNED_CHECKPOINT', 'PRUNED_CONFIG', 'PRUNING_REPORT', 'prune', 'prune_segmentor',
           'pruned_config', 'segmentor_gmacs', 'zero_channels']

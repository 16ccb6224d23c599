"""Whole-model conversion to the deploy form."""
from torch import nn

from .backbones.repvgg_block import RepVGGBlock


def reparameterize(model: nn.Module) -> nn.Module:
    """Convert every RepVGG block inside ``model`` (a backbone, an EncoderDecoder, anything) in place.

    The fused kernels come from the BN *running* statistics, so the converted model equals the original one in eval
    mode, also when called on a model in train mode or built with SyncBN. Every other module and tensor is left
    untouched; already converted blocks are skipped, so a second call is a no-op. Returns ``model``.
    """
    for module in list(model.modules()):
        if isinstance(module, RepVGGBlock):
            module.switch_to_deploy()
    return model

"""The segmentor's network as a plain ``Tensor -> Tensor`` module, the unit every runtime compiles."""
import torch.nn.functional as F
from torch import Tensor, nn


class SegLogits(nn.Module):
    """What inference computes, as a plain ``Tensor -> Tensor`` module: backbone (+neck), decode head, and the
    bilinear resize of the logits to the input size (as ``decode_head.predict``). The auxiliary head is training-only
    and the data preprocessor (mean/std) is left out: both are the same for every model."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.backbone = segmentor.backbone
        self.neck = segmentor.neck if getattr(segmentor, 'with_neck', False) else None
        self.decode_head = segmentor.decode_head
        self.align_corners = bool(segmentor.decode_head.align_corners)

    def forward(self, x: Tensor) -> Tensor:
        feats = self.backbone(x)
        if self.neck is not None:
            feats = self.neck(feats)
        logits = self.decode_head(feats)
        return F.interpolate(logits, size=x.shape[2:], mode='bilinear', align_corners=self.align_corners)

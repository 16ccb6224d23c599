"""A segmentor's network as a plain ``Tensor -> Tensor`` module: the unit every runtime compiles, every exporter
writes and every parity check compares."""
from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class BilinearResize(nn.Module):
    """``F.interpolate(x, size, mode='bilinear')`` as a module, so that a converter can swap in its own form (the
    deploy rewrite's matrix products, ``repseg.runtime.rewrite``) for the one resize every segmentor ends with."""

    def __init__(self, align_corners: bool = False):
        super().__init__()
        self.align_corners = align_corners

    def forward(self, x: Tensor, size: Sequence[int]) -> Tensor:
        return F.interpolate(x, size=size, mode='bilinear', align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f'align_corners={self.align_corners}'


class SegLogits(nn.Module):
    """``segmentor(x, mode='tensor')``, the decode head's logits on a preprocessed N x 3 x H x W batch (no auxiliary
    head, no data preprocessor); with ``resize`` bilinearly resized to the input size, as ``decode_head.predict``
    does at test time. For every segmentor whose ``_forward`` is the deployed network (``EncoderDecoder``, RepSeg's
    OpenVINO and QAT segmentors). ``part='backbone'``: the backbone's last output alone (the benchmark's)."""

    def __init__(self, segmentor: nn.Module, resize: bool = True, part: str = 'model'):
        super().__init__()
        if part not in ('model', 'backbone'):
            raise ValueError(f"SegLogits part={part!r}: expected 'model' or 'backbone'")
        self.segmentor = segmentor
        self.resize = resize
        self.part = part
        head = getattr(segmentor, 'decode_head', None)
        self.align_corners = bool(getattr(head, 'align_corners', getattr(segmentor, 'align_corners', False)))
        self.upsample = BilinearResize(self.align_corners)

    def forward(self, x: Tensor) -> Tensor:
        if self.part == 'backbone':
            return self.segmentor.backbone(x)[-1]
        logits = self.segmentor(x, mode='tensor')
        if self.resize and tuple(logits.shape[2:]) != tuple(x.shape[2:]):
            logits = self.upsample(logits, x.shape[2:])
        return logits

"""Proof that two segmentors compute the same thing: logit differences and argmax agreement, eval mode."""
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from repseg.apis import segment
from repseg.models import SegLogits
from repseg.utils import LOGIT_RTOL, MIN_AGREEMENT, LogitDiff, compare_logits
from repseg.utils.cuda import ieee_fp32


def random_input(shape: Sequence[int], seed: int = 0) -> Tensor:
    """A fixed 1x3xHxW standard-normal input, i.e. in the data preprocessor's normalized space."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, *shape, generator=gen)


def verify_models(ref: nn.Module, dep: nn.Module, shape: Sequence[int] = (256, 512),
                  image: Optional[Union[str, Path]] = None, atol: Optional[float] = None, rtol: float = LOGIT_RTOL,
                  min_agreement: float = MIN_AGREEMENT, seed: int = 0) -> List[LogitDiff]:
    """Both models in eval mode on a fixed random input (the decode head's logits), and on ``image`` through the
    test pipeline (logits at the image's size, as ``tools/test.py`` computes them). One LogitDiff per input. On a GPU
    in IEEE fp32: TF32 convolutions alone differ by more than the tolerance."""
    ref.eval(), dep.eval()
    x = random_input(shape, seed).to(next(ref.parameters()).device)
    kw = dict(atol=atol, rtol=rtol, min_agreement=min_agreement)
    with torch.no_grad(), ieee_fp32():
        diffs = [compare_logits(f'random(seed={seed})', SegLogits(ref, resize=False)(x),
                                SegLogits(dep, resize=False)(x), **kw)]
        if image is not None:
            diffs.append(compare_logits(Path(image).name, segment(ref, image).seg_logits.data,
                                        segment(dep, image).seg_logits.data, **kw))
    return diffs

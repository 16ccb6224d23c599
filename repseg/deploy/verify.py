"""Proof that two segmentors compute the same thing: logit differences and argmax agreement, eval mode."""
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from repseg.apis import segment


@dataclass
class LogitDiff:
    """How far the deploy logits are from the reference ones on one input."""

    input: str
    shape: Tuple[int, ...]
    max_abs: float
    max_logit: float
    agreement: float  # fraction of pixels whose argmax class is the same
    tolerance: float  # on max_abs
    min_agreement: float

    @property
    def max_rel(self) -> float:
        return self.max_abs / self.max_logit if self.max_logit > 0 else float('inf')

    @property
    def passed(self) -> bool:
        return self.max_abs <= self.tolerance and self.agreement >= self.min_agreement

    def as_dict(self) -> Dict[str, Any]:
        return dict(asdict(self), shape=list(self.shape), max_rel=self.max_rel, passed=self.passed)

    def __str__(self) -> str:
        return (f'{self.input} {"x".join(map(str, self.shape))}: max |logit diff| {self.max_abs:.3e} '
                f'(relative {self.max_rel:.3e} of max |logit| {self.max_logit:.3g}; tolerance {self.tolerance:.3e}), '
                f'argmax agreement {self.agreement * 100:.4f}% -> {"OK" if self.passed else "FAILED"}')


def compare_logits(name: str, ref: Tensor, out: Tensor, atol: Optional[float] = None, rtol: float = 1e-4,
                   min_agreement: float = 0.9999) -> LogitDiff:
    """Compare C x H x W (or N x C x H x W) logits. The tolerance is ``atol`` when given, else
    ``rtol * max|ref|``: logits scale with the weights, so a relative bound is the meaningful default."""
    if ref.shape != out.shape:
        raise ValueError(f'{name}: logits of shape {tuple(ref.shape)} and {tuple(out.shape)} differ')
    ref, out = ref.detach().float(), out.detach().float()
    max_logit = ref.abs().max().item()
    max_abs = (ref - out).abs().max().item()
    if max_abs != max_abs:  # NaN
        max_abs = float('inf')
    cls_dim = ref.dim() - 3
    agreement = (ref.argmax(cls_dim) == out.argmax(cls_dim)).float().mean().item()
    tol = atol if atol is not None else rtol * max_logit
    return LogitDiff(name, tuple(ref.shape), max_abs, max_logit, agreement, tol, min_agreement)


def random_input(shape: Sequence[int], seed: int = 0) -> Tensor:
    """A fixed 1x3xHxW standard-normal input, i.e. in the data preprocessor's normalized space."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, *shape, generator=gen)


@torch.no_grad()
def tensor_logits(model: nn.Module, x: Tensor) -> Tensor:
    """The EncoderDecoder's 'tensor' mode output: decode-head logits at the head's resolution."""
    return model(x, mode='tensor')


def verify_models(ref: nn.Module, dep: nn.Module, shape: Sequence[int] = (256, 512),
                  image: Optional[Union[str, Path]] = None, atol: Optional[float] = None, rtol: float = 1e-4,
                  min_agreement: float = 0.9999, seed: int = 0) -> list:
    """Both models in eval mode on a fixed random input, and on ``image`` through the test pipeline (logits at the
    image's size, as ``tools/test.py`` computes them). Returns one LogitDiff per input."""
    ref.eval(), dep.eval()
    x = random_input(shape, seed)
    kw = dict(atol=atol, rtol=rtol, min_agreement=min_agreement)
    diffs = [compare_logits(f'random(seed={seed})', tensor_logits(ref, x), tensor_logits(dep, x), **kw)]
    if image is not None:
        diffs.append(compare_logits(Path(image).name, segment(ref, image).seg_logits.data,
                                    segment(dep, image).seg_logits.data, **kw))
    return diffs

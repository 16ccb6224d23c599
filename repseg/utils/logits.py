"""Whether two networks compute the same thing, one rule everywhere (deploy conversion, runtimes, exports, the
benchmark): max |logit difference| at most ``LOGIT_RTOL`` times max |reference logit| (logits scale with the weights,
so a relative bound is the meaningful default), argmax agreement on at least ``MIN_AGREEMENT`` of the pixels.
"""
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

from torch import Tensor

LOGIT_RTOL = 1e-4
MIN_AGREEMENT = 0.9999


@dataclass
class LogitDiff:
    """How far logits are from the reference ones on one input; ``passed`` None: recorded, not judged."""

    input: str
    shape: Tuple[int, ...]
    max_abs: float
    max_logit: float
    agreement: float  # fraction of pixels whose argmax class is the same
    tolerance: Optional[float]  # on max_abs
    min_agreement: float

    @property
    def max_rel(self) -> float:
        return self.max_abs / self.max_logit if self.max_logit > 0 else float('inf')

    @property
    def passed(self) -> Optional[bool]:
        if self.tolerance is None:
            return None
        return self.max_abs <= self.tolerance and self.agreement >= self.min_agreement

    def as_dict(self) -> Dict[str, Any]:
        return dict(asdict(self), shape=list(self.shape), max_rel=self.max_rel, passed=self.passed)

    def __str__(self) -> str:
        verdict = {True: 'OK', False: 'FAILED', None: 'recorded'}[self.passed]
        tolerance = '' if self.tolerance is None else f'; tolerance {self.tolerance:.3e}'
        return (f'{self.input} {"x".join(map(str, self.shape))}: max |logit diff| {self.max_abs:.3e} '
                f'(relative {self.max_rel:.3e} of max |logit| {self.max_logit:.3g}{tolerance}), '
                f'argmax agreement {self.agreement * 100:.4f}% -> {verdict}')


def compare_logits(name: str, ref: Tensor, out: Tensor, atol: Optional[float] = None,
                   rtol: Optional[float] = LOGIT_RTOL, min_agreement: float = MIN_AGREEMENT) -> LogitDiff:
    """Compare (N x) C x H x W logits within ``atol``, else ``rtol * max|ref|``; both None: recorded, not judged."""
    if ref.shape != out.shape:
        raise ValueError(f'{name}: logits of shape {tuple(ref.shape)} and {tuple(out.shape)} differ')
    ref, out = ref.detach().float().cpu(), out.detach().float().cpu()
    max_logit = ref.abs().max().item()
    max_abs = (ref - out).abs().max().item()
    if max_abs != max_abs:  # NaN
        max_abs = float('inf')
    cls_dim = ref.dim() - 3
    agreement = (ref.argmax(cls_dim) == out.argmax(cls_dim)).float().mean().item()
    tol = atol if atol is not None else None if rtol is None else rtol * max_logit
    return LogitDiff(name, tuple(ref.shape), max_abs, max_logit, agreement, tol, min_agreement)

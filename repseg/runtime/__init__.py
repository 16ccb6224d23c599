"""Deploy runtimes: turn an eval-mode ``Tensor -> Tensor`` model into the fastest callable this machine offers.

    from repseg.runtime import prepare
    run = prepare(model, 'onnxruntime', example_input)   # callable: Tensor (N, 3, H, W) -> logits Tensor
    logits = run(images)

Every runtime computes the same function as eager PyTorch (checked by ``repseg.benchmark`` to 1e-4 x max|logit|).
"""
from .runtimes import DEFAULT_RUNTIME, RUNTIMES, Runner, check_runtimes, prepare
from .seg_logits import SegLogits
from .segmentor import with_runtime

__all__ = ['DEFAULT_RUNTIME', 'RUNTIMES', 'Runner', 'SegLogits', 'check_runtimes', 'prepare', 'with_runtime']

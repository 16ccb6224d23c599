"""Run a whole MMSegmentation segmentor's network through a deploy runtime, keeping its test-time logic."""
import copy
from typing import Dict, Tuple

from torch import Tensor, nn

from .runtimes import RUNTIMES, Runner, prepare
from .seg_logits import SegLogits


def with_runtime(segmentor: nn.Module, runtime: str = 'eager') -> nn.Module:
    """Route ``segmentor.encode_decode`` (the network on one image or one sliding window) through ``runtime``.

    Everything around it, data preprocessing, sliding windows, resizing to the image and argmax, stays
    MMSegmentation's. Runtimes with static shapes are prepared once per input shape (one shape per window size
    with ``mode='slide'``). Returns ``segmentor``, changed in place; 'eager' leaves it untouched.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f'runtime {runtime!r}: expected one of {", ".join(RUNTIMES)}')
    if runtime == 'eager':
        return segmentor
    network = SegLogits(segmentor).eval()
    prepared: Dict[Tuple[int, ...], Runner] = {}

    def encode_decode(inputs: Tensor, batch_img_metas: list) -> Tensor:
        shape = tuple(inputs.shape)
        if shape not in prepared:  # a fresh copy: preparing may specialize modules to the shape
            prepared[shape] = prepare(copy.deepcopy(network), runtime, inputs)
        return prepared[shape](inputs)

    segmentor.encode_decode = encode_decode
    segmentor.runtime = runtime
    return segmentor

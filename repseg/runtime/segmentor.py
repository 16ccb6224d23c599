"""Run a whole MMSegmentation segmentor's network through a deploy runtime, keeping its test-time logic."""
import copy
from typing import Dict, Tuple

from torch import Tensor, nn

from .runtimes import RUNTIMES, Runner, prepare
from .seg_logits import SegLogits

#: Runtimes whose prepared network takes any input shape (prepared once, not once per shape).
SHAPE_GENERIC = frozenset({'channels_last', 'openvino'})
#: Runtimes that quantize: not for ``with_runtime`` (tools/quantize.py measures what quantization costs).
QUANTIZING = frozenset({'openvino_int8'})


def with_runtime(segmentor: nn.Module, runtime: str = 'eager') -> nn.Module:
    """Route ``segmentor.encode_decode`` (the network on one image or one sliding window) through ``runtime``.

    Everything around it, data preprocessing, sliding windows, resizing to the image and argmax, stays
    MMSegmentation's. Runtimes with static shapes are prepared once per input shape (one shape per window size
    with ``mode='slide'``), shape-generic ones (OpenVINO) once. Returns ``segmentor``, changed in place; 'eager'
    leaves it untouched, and so does the runtime a segmentor already runs in (``OpenVINOEncoderDecoder``).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f'runtime {runtime!r}: expected one of {", ".join(RUNTIMES)}')
    if not hasattr(segmentor, 'backbone'):  # e.g. OpenVINOEncoderDecoder: its network already is a runtime
        if runtime in ('eager', getattr(segmentor, 'runtime', 'eager')):
            return segmentor
        raise ValueError(f'runtime {runtime!r}: this {type(segmentor).__name__} runs in '
                         f'{getattr(segmentor, "runtime", "its own runtime")} only; choose that or eager (no change)')
    if runtime == 'eager':
        return segmentor
    if runtime in QUANTIZING:
        raise ValueError(f'runtime {runtime!r} quantizes, which needs calibration data and a measured accuracy: '
                         f'run tools/quantize.py CONFIG CHECKPOINT --out-dir DIR, then use DIR/int8_config.py '
                         f'DIR/int8.pth')
    network = SegLogits(segmentor).eval()
    prepared: Dict[Tuple[int, ...], Runner] = {}

    def encode_decode(inputs: Tensor, batch_img_metas: list) -> Tensor:
        shape = None if runtime in SHAPE_GENERIC else tuple(inputs.shape)
        if shape not in prepared:  # a fresh copy: preparing may specialize modules to the shape
            prepared[shape] = prepare(copy.deepcopy(network), runtime, inputs)
        return prepared[shape](inputs)

    segmentor.encode_decode = encode_decode
    segmentor.runtime = runtime
    return segmentor

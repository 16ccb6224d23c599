"""Run a whole MMSegmentation segmentor's network through a deploy runtime, keeping its test-time logic."""
import copy
from typing import Dict, Optional, Tuple

from torch import Tensor, nn

from ..models import SegLogits
from .registry import Runner, get_runtime


def segmentor_form(segmentor: nn.Module) -> str:
    """'int8' for a segmentor that declares it (an int8 folder's), 'train' / 'deploy' for a RepVGG segmentor, else
    'baseline'."""
    own = getattr(segmentor, 'form', None)
    if isinstance(own, str):
        return own
    backbone = getattr(segmentor, 'backbone', None)
    if not isinstance(getattr(backbone, 'deploy', None), bool):
        return 'baseline'
    return 'deploy' if backbone.deploy else 'train'


def with_runtime(segmentor: nn.Module, runtime: str = 'eager') -> nn.Module:
    """Route ``segmentor.encode_decode`` (the network on one image or one sliding window) through ``runtime``;
    preprocessing, sliding windows, resizing and argmax stay MMSegmentation's. Static-shape runtimes are prepared once
    per input shape. A runtime that does not serve the segmentor's form or device is refused before any image is
    read. Returns ``segmentor``, changed in place; 'eager' leaves it untouched, as does any runtime for an int8
    folder's segmentor (it runs in its own OpenVINO network)."""
    spec = get_runtime(runtime)
    form = segmentor_form(segmentor)
    if form not in spec.forms:
        serving = [name for name in ('eager', 'onnxruntime', 'openvino') if form in get_runtime(name).forms]
        raise ValueError(f'runtime {runtime!r} does not run {form}-form models; choose one of {", ".join(serving)}')
    param = next(segmentor.parameters(), None)
    device = param.device.type if param is not None else 'cpu'
    if device not in spec.devices:
        raise ValueError(f'runtime {runtime!r} runs on {", ".join(sorted(spec.devices))} only, but the model is on '
                         f'{device}; run it on the CPU (--device cpu) or choose --runtime eager')
    if runtime == 'eager' or form == 'int8':
        return segmentor
    network = SegLogits(segmentor).eval()
    prepared: Dict[Optional[Tuple[int, ...]], Runner] = {}

    def encode_decode(inputs: Tensor, batch_img_metas: list) -> Tensor:
        shape = None if spec.shape_generic else tuple(inputs.shape)
        if shape not in prepared:  # a fresh copy: preparing may specialize modules to the shape
            prepared[shape] = spec.prepare(copy.deepcopy(network), inputs)
        return prepared[shape](inputs)

    segmentor.encode_decode = encode_decode
    segmentor.runtime = runtime
    return segmentor

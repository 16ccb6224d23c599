"""Run a whole MMSegmentation segmentor's network through a deploy runtime, keeping its test-time logic."""
import copy
from typing import Callable, Dict, Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from ..models import SegLogits
from ..utils.cuda import float_precision
from .auto import NATIVE, POLICIES, CheckedRunner, choose_runtime
from .registry import FOLDER_FORMS, RUNTIMES, Runner, check_offered, get_runtime


def segmentor_form(segmentor: nn.Module) -> str:
    """The form a folder's segmentor declares, 'train' / 'deploy' for a RepVGG segmentor, else 'baseline'."""
    own = getattr(segmentor, 'form', None)
    if isinstance(own, str):
        return own
    backbone = getattr(segmentor, 'backbone', None)
    if not isinstance(getattr(backbone, 'deploy', None), bool):
        return 'baseline'
    return 'deploy' if backbone.deploy else 'train'


def _log(message: str) -> None:
    print_log(message, logger='current')


def with_runtime(segmentor: nn.Module, runtime: str = NATIVE, log: Callable[[str], None] = _log) -> nn.Module:
    """Route ``segmentor.encode_decode`` through ``runtime`` in place (the rest of the test path stays MMSegmentation's;
    static-shape runtimes are prepared per input shape), refusing a runtime that cannot serve it before any image is
    read; 'native' and 'auto' pick one for this CPU (``repseg.runtime.auto``). ``segmentor.runtime`` and
    ``.runtime_precision`` name what runs; a tools/quantize.py folder keeps its own OpenVINO network."""
    form = segmentor_form(segmentor)
    param = next(segmentor.parameters(), None)
    place = param.device if param is not None else 'cpu'
    device = torch.device(place).type
    choice = None
    if runtime in POLICIES:
        choice = choose_runtime(form, device, policy=runtime)
        log(choice.line())
        runtime = choice.runtime
    spec = get_runtime(runtime)
    if form not in spec.forms:
        serving = [name for name, r in RUNTIMES.items() if form in r.forms]
        raise ValueError(f'runtime {runtime!r} does not run {form}-form models; choose one of {", ".join(serving)}')
    if device not in spec.devices:
        raise ValueError(f'runtime {runtime!r} runs on {", ".join(sorted(spec.devices))} only, but the model is on '
                         f'{device}; run it on the CPU (--device cpu) or choose --runtime eager')
    check_offered(runtime)
    segmentor.runtime = runtime
    # a folder computes in its own precision whatever runs it (bf16 in f32 where the CPU has no bf16); an fp32 model
    # on a GPU in TF32 where it is enabled
    segmentor.runtime_precision = (choose_runtime(form, device).precision if form in FOLDER_FORMS else
                                   float_precision(place) if spec.precision == 'fp32' else spec.precision)
    if runtime == 'eager' or form in FOLDER_FORMS:
        return segmentor
    network = SegLogits(segmentor).eval()
    prepared: Dict[Tuple[str, Optional[Tuple[int, ...]]], Runner] = {}

    def runner(name: str, inputs: Tensor) -> Runner:
        spec = get_runtime(name)
        key = (name, None if spec.shape_generic else tuple(inputs.shape))
        if key not in prepared:  # a fresh copy: preparing may specialize modules to the shape
            prepared[key] = spec.prepare(copy.deepcopy(network), inputs)
        return prepared[key]

    def lazy(name: str) -> Runner:
        return lambda x: runner(name, x)(x)

    run = lazy(runtime)
    if choice is not None and choice.fallback:  # bf16 picked by auto: checked against fp32 on the first input
        run = CheckedRunner(run, lazy(choice.fallback), choice, log)

    def encode_decode(inputs: Tensor, batch_img_metas: list) -> Tensor:
        out = run(inputs)
        if isinstance(run, CheckedRunner) and not run.kept:
            segmentor.runtime, segmentor.runtime_precision = choice.fallback, 'fp32'
        return out

    segmentor.encode_decode = encode_decode
    return segmentor

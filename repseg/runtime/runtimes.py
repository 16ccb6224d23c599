"""The runtimes. Each ``_prepare_*`` returns a callable that keeps whatever it compiled alive.

Why several: on a CPU, eager PyTorch runs each op through oneDNN with a layout conversion per conv and a separate
ReLU pass; channels-last avoids the conversions, TorchScript freezing fuses conv+ReLU and pre-packs weights, Inductor
does the same with generated C++ for the glue ops, ONNX Runtime uses its own (MLAS) conv kernels with fused
activations, OpenVINO its own oneDNN-based graph compiler (fp32 pinned, and int8 after NNCF quantization). Which
wins depends on the machine and the model; the benchmark measures them.
"""
import os
import tempfile
from typing import Callable, Dict, Iterable, List, Optional

import torch
from torch import Tensor, nn

from .openvino_runtime import _prepare_openvino, _prepare_openvino_int8
from .rewrite import specialize_adaptive_pools

Runner = Callable[[Tensor], Tensor]

#: What ``prepare`` uses when the caller does not choose (the fastest on the CPU it was measured on, docs/benchmark.md).
DEFAULT_RUNTIME = 'onnxruntime'


def _prepare_eager(model: nn.Module, example: Tensor) -> Runner:
    return model


def _prepare_channels_last(model: nn.Module, example: Tensor) -> Runner:
    model = model.to(memory_format=torch.channels_last)

    def run(x: Tensor) -> Tensor:
        return model(x.contiguous(memory_format=torch.channels_last))
    return run


def _prepare_torchscript(model: nn.Module, example: Tensor) -> Runner:
    """Trace, freeze and ``optimize_for_inference``: weights become constants pre-packed for oneDNN, conv+ReLU fused,
    activations kept in oneDNN's blocked layout between convs (no Python per op)."""
    specialize_adaptive_pools(model, example)
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(model, example, check_trace=False).eval())
        return torch.jit.optimize_for_inference(frozen)


def _prepare_onednn_graph(model: nn.Module, example: Tensor) -> Runner:
    """TorchScript with the oneDNN Graph fuser (conv+bias+ReLU partitions compiled by oneDNN); needs two warm-up
    calls to profile and fuse. Note: ``enable_onednn_fusion`` is process-wide (the benchmark runs one runtime per
    process)."""
    torch.jit.enable_onednn_fusion(True)
    specialize_adaptive_pools(model, example)
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(model, example, check_trace=False).eval())
    return frozen


def _prepare_inductor(model: nn.Module, example: Tensor) -> Runner:
    """``torch.compile`` (Inductor) with freezing, so that conv weights are pre-packed for oneDNN and fused with ReLU.
    Compiles on the first call (minutes for large models); shapes are static."""
    import torch._inductor.config as inductor_config
    inductor_config.freezing = True
    compiled = torch.compile(model, backend='inductor', dynamic=False)
    return compiled


def _prepare_onnxruntime(model: nn.Module, example: Tensor) -> Runner:
    """Export to ONNX (static shape) and run it in ONNX Runtime's CPU provider with all graph optimizations
    (conv+activation fusion, NCHWc layouts) and as many intra-op threads as PyTorch uses."""
    import onnxruntime as ort
    specialize_adaptive_pools(model, example)
    fd, path = tempfile.mkstemp(suffix='.onnx', prefix='repseg-')
    os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(model, (example,), path, input_names=['images'], output_names=['logits'],
                              opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False  # free activations after each run, as PyTorch does (honest peak memory)
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    finally:
        os.unlink(path)

    shape = tuple(example.shape)

    def run(x: Tensor) -> Tensor:
        if tuple(x.shape) != shape:
            raise ValueError(f'onnxruntime: input shape {tuple(x.shape)}, but the model was exported for {shape}; '
                             f'prepare one per input shape')
        out = session.run(None, {'images': x.detach().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(out)
    run.session = session  # keep it reachable for callers that want to inspect it
    return run


RUNTIMES: Dict[str, Callable[[nn.Module, Tensor], Runner]] = {
    'eager': _prepare_eager,
    'channels_last': _prepare_channels_last,
    'torchscript': _prepare_torchscript,
    'onednn_graph': _prepare_onednn_graph,
    'inductor': _prepare_inductor,
    'onnxruntime': _prepare_onnxruntime,
    'openvino': _prepare_openvino,
    'openvino_int8': _prepare_openvino_int8,
}

#: Runtimes that run on the CPU only.
CPU_ONLY = frozenset({'onnxruntime', 'onednn_graph', 'openvino', 'openvino_int8'})


def check_runtimes(names: Iterable[str]) -> List[str]:
    """Validate runtime names; one-line error naming the unknown one and the choices."""
    names = [n.strip() for n in names if n.strip()]
    for name in names:
        if name not in RUNTIMES:
            raise ValueError(f'runtime {name!r}: unknown; expected one of {", ".join(RUNTIMES)}')
    if not names:
        raise ValueError(f'no runtime given; expected one or more of {", ".join(RUNTIMES)}')
    return names


def prepare(model: nn.Module, runtime: str = DEFAULT_RUNTIME, example_input: Optional[Tensor] = None,
            calibration: Optional[List[Tensor]] = None) -> Runner:
    """Return a callable ``images -> logits`` running ``model`` (eval mode, a ``Tensor -> Tensor`` module such as
    ``repseg.runtime.SegLogits``) in ``runtime``. ``example_input`` fixes the shape for runtimes that specialize
    on it (torchscript, inductor, onnxruntime) and serves the trace of the others; call the result under
    ``torch.inference_mode()`` or ``no_grad``. ``calibration`` (input tensors) is for 'openvino_int8' only.
    The model may be modified (memory format); keep using the returned callable, not the model."""
    check_runtimes([runtime])
    if example_input is None and runtime not in ('eager', 'channels_last'):
        raise ValueError(f'runtime {runtime!r} needs example_input (a tensor of the input shape)')
    if runtime in CPU_ONLY and example_input.device.type != 'cpu':
        raise ValueError(f'runtime {runtime!r} runs on the CPU only; got an input on {example_input.device}')
    if calibration is not None:
        if runtime != 'openvino_int8':
            raise ValueError(f'runtime {runtime!r} takes no calibration data (only openvino_int8 does)')
        return RUNTIMES[runtime](model.eval(), example_input, calibration)
    return RUNTIMES[runtime](model.eval(), example_input)

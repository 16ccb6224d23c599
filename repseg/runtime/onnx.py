"""The one ONNX exporter: what ``tools/export_onnx.py`` writes and what the ``onnxruntime`` runtime runs.

TorchScript-based export at one static shape (the callers need no other), with ``deploy_rewrites``: the exporter
refuses adaptive pooling on sizes the bins do not divide. The session has no memory arena, freeing activations after
each run as PyTorch does, so that peak memory is comparable.
"""
import io
from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

from .rewrite import deploy_rewrites

INPUT_NAME, OUTPUT_NAME = 'input', 'logits'
OPSET = 17


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a one-line error saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ModuleNotFoundError('onnxruntime is not installed; install the deploy extra: '
                                  'pip install -e ".[deploy]"') from None
    return onnxruntime


@torch.no_grad()
def onnx_bytes(module: nn.Module, example: Tensor, metadata: Optional[Dict[str, str]] = None) -> bytes:
    """The serialized ONNX model of the eval-mode ``module`` at ``example``'s shape, with ``metadata_props``."""
    module.eval()
    buffer = io.BytesIO()
    with deploy_rewrites(module):
        torch.onnx.export(module, (example.cpu(),), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=OPSET, dynamo=False)
    data = buffer.getvalue()
    if not metadata:
        return data
    import onnx
    proto = onnx.load_from_string(data)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    return proto.SerializeToString()


def ort_session(data: bytes, threads: Optional[int] = None) -> Any:
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(data, options, providers=['CPUExecutionProvider'])


class OnnxRuntimeNetwork:
    """An ONNX Runtime session as a ``Tensor -> Tensor`` callable for the one input shape it was exported for."""

    def __init__(self, session: Any, shape: tuple):
        self.session = session
        self.shape = tuple(shape)

    def __call__(self, x: Tensor) -> Tensor:
        if tuple(x.shape) != self.shape:
            raise ValueError(f'onnxruntime: input shape {tuple(x.shape)}, but the model was exported for '
                             f'{self.shape}; prepare one per input shape')
        out = self.session.run(None, {INPUT_NAME: x.detach().cpu().float().contiguous().numpy()})[0]
        return torch.from_numpy(out)


def prepare_onnxruntime(model: nn.Module, example: Tensor) -> OnnxRuntimeNetwork:
    require_onnxruntime()
    return OnnxRuntimeNetwork(ort_session(onnx_bytes(model, example)), tuple(example.shape))

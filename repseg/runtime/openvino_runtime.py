"""OpenVINO: conversion of a ``Tensor -> Tensor`` PyTorch module, IR bytes in and out, and a compiled callable.

Traced straight from PyTorch, not through ONNX: one IR takes any N and H x W, converted in seconds.
``INFERENCE_PRECISION_HINT`` is always set: the CPU plugin otherwise runs fp32 models in bf16 by itself on
AVX512_BF16 or AMX CPUs, and without bf16 it runs a bf16 request in f32 (``executed_precision`` says which).
"""
import errno
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from repseg.utils.io import WriteError
from .rewrite import deploy_rewrites

try:
    import resource
except ImportError:  # not on Windows
    resource = None

IR_XML, IR_BIN = 'model.xml', 'model.bin'


def require_openvino() -> Any:
    """The ``openvino`` module, or a one-line error saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise ModuleNotFoundError('openvino is not installed; install the deploy extra: pip install -e ".[deploy]" '
                                  '(or pip install openvino nncf)') from None
    return openvino


def openvino_version() -> str:
    return require_openvino().get_version()


def compile_options(threads: Optional[int] = None, precision: str = 'f32') -> Dict[str, Any]:
    """CPU plugin options: ``precision`` pinned, ``threads`` (default PyTorch's), latency mode (one stream)."""
    if precision not in ('f32', 'bf16'):
        raise ValueError(f'OpenVINO precision {precision!r}: expected f32 or bf16')
    return {'INFERENCE_PRECISION_HINT': precision, 'INFERENCE_NUM_THREADS': int(threads or torch.get_num_threads()),
            'PERFORMANCE_HINT': 'LATENCY', 'NUM_STREAMS': 1}


@torch.no_grad()
def convert_module(module: nn.Module, example: Tensor, dynamic: bool = True) -> Any:
    """``openvino.Model`` of an eval-mode ``Tensor -> Tensor`` module traced on ``example``, with ``deploy_rewrites``
    (OpenVINO runs ``AdaptiveAvgPool`` on a reference kernel); ``dynamic``: N, H and W stay free."""
    ov = require_openvino()
    if example.dim() != 4:
        raise ValueError(f'openvino: expected an N x C x H x W example input, got shape {tuple(example.shape)}')
    shape = [-1, int(example.shape[1]), -1, -1] if dynamic else list(example.shape)
    with deploy_rewrites(module):
        return ov.convert_model(module.eval(), example_input=example.cpu(), input=[ov.PartialShape(shape)])


def ir_bytes(model: Any, scratch_dir: Optional[str] = None) -> Tuple[bytes, bytes]:
    """(xml, bin) of ``model``, fp32 weights kept fp32, via a temporary folder in ``scratch_dir``: OpenVINO writes
    only to files."""
    ov = require_openvino()
    with tempfile.TemporaryDirectory(prefix='.repseg-ir-', dir=scratch_dir) as tmp:
        try:
            ov.save_model(model, os.path.join(tmp, IR_XML), compress_to_fp16=False)
        except RuntimeError as err:  # its C++ stream names neither the file nor the reason
            if 'iostream error' not in str(err):
                raise
            raise _stream_failure(Path(tmp)) from None
        return Path(tmp, IR_XML).read_bytes(), Path(tmp, IR_BIN).read_bytes()


def _stream_failure(folder: Path) -> WriteError:
    """Why OpenVINO's writer failed in ``folder`` (its stream swallows the errno): no space, or a file-size limit."""
    code = None
    try:
        stat = os.statvfs(folder)
        if stat.f_bavail * stat.f_frsize < 16 << 20:
            code = errno.ENOSPC
    except OSError:
        pass
    if code is None and resource is not None and resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
        code = errno.EFBIG
    reason = os.strerror(code) if code else 'OpenVINO could not write the IR (its stream failed)'
    return WriteError(folder / IR_BIN, reason, code)


def read_ir(xml: bytes, weights: bytes) -> Any:
    """``openvino.Model`` from IR bytes (the weights are copied: the model does not keep the buffers alive)."""
    ov = require_openvino()
    return ov.Core().read_model(model=bytes(xml), weights=bytes(weights))


class OpenVINONetwork:
    """A compiled OpenVINO model as a ``Tensor -> Tensor`` callable (first output, CPU, float32), keeping ``model``."""

    def __init__(self, model: Any, threads: Optional[int] = None, precision: str = 'f32', compiled: Any = None):
        ov = require_openvino()
        self.model = model
        self.options = compile_options(threads, precision)
        self.compiled = compiled if compiled is not None else ov.Core().compile_model(model, 'CPU', self.options)
        self.request = self.compiled.create_infer_request()

    @property
    def executed_precision(self) -> str:
        """The precision OpenVINO compiled the float layers in ('f32' or 'bf16'), which may differ from the request."""
        value = self.compiled.get_property('INFERENCE_PRECISION_HINT')
        return value.to_string() if hasattr(value, 'to_string') else str(value)

    @classmethod
    def from_compiled(cls, compiled: Any) -> 'OpenVINONetwork':
        """Wrap a model compiled elsewhere (NNCF's accuracy control compiles its candidates itself, fp32 pinned)."""
        return cls(None, compiled=compiled)

    def __call__(self, x: Tensor) -> Tensor:
        self.request.infer({0: np.ascontiguousarray(x.detach().cpu().float().numpy())})
        return torch.from_numpy(np.array(self.request.get_output_tensor(0).data, copy=True))


def prepare_openvino(model: nn.Module, example: Tensor) -> OpenVINONetwork:
    return OpenVINONetwork(convert_module(model, example))


def prepare_openvino_bf16(model: nn.Module, example: Tensor) -> OpenVINONetwork:
    return OpenVINONetwork(convert_module(model, example), precision='bf16')

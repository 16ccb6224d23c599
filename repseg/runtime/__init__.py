"""Deploy runtimes: ``prepare(SegLogits(segmentor), 'onnxruntime', example_input)`` turns an eval-mode ``Tensor ->
Tensor`` model into a callable this machine runs fast, computing the same logits as eager PyTorch."""
from .onnx import onnx_bytes, ort_session
from .openvino_runtime import OpenVINONetwork
from .registry import FORMS, RUNTIMES, Runner, Runtime, check_runtimes, get_runtime, prepare
from .segmentor import segmentor_form, with_runtime

__all__ = ['FORMS', 'OpenVINONetwork', 'RUNTIMES', 'Runner', 'Runtime', 'check_runtimes', 'get_runtime',
           'onnx_bytes', 'ort_session', 'prepare', 'segmentor_form', 'with_runtime']

"""Deploy runtimes: turn an eval-mode ``Tensor -> Tensor`` model into a callable this machine runs fast.

    from repseg.runtime import prepare
    run = prepare(SegLogits(segmentor), 'onnxruntime', example_input)   # Tensor (N, 3, H, W) -> logits Tensor
    logits = run(images)

Every runtime computes the same function as eager PyTorch (within ``repseg.utils.LOGIT_RTOL``; the benchmark and
the tests check it).
"""
from .onnx import onnx_bytes, ort_session
from .openvino_runtime import OpenVINONetwork
from .registry import FORMS, RUNTIMES, Runner, Runtime, check_runtimes, get_runtime, prepare
from .segmentor import segmentor_form, with_runtime

__all__ = ['FORMS', 'OpenVINONetwork', 'RUNTIMES', 'Runner', 'Runtime', 'check_runtimes', 'get_runtime',
           'onnx_bytes', 'ort_session', 'prepare', 'segmentor_form', 'with_runtime']

"""Deploy runtimes: ``prepare(SegLogits(segmentor), 'onnxruntime', example_input)`` turns an eval-mode ``Tensor ->
Tensor`` model into a callable this machine runs fast, computing the same logits as eager PyTorch;
``with_runtime(segmentor, 'native')`` runs a segmentor in the fastest runtime for this CPU in its own precision,
``'auto'`` possibly in a reduced one (bf16) that keeps its predictions."""
from .auto import AUTO, AUTO_TABLE, MIN_BF16_AGREEMENT, NATIVE, POLICIES, AutoChoice, choose_runtime
from .onnx import onnx_bytes, ort_session
from .openvino_runtime import OpenVINONetwork
from .registry import (FOLDER_FORMS, FORMS, RUNTIMES, Runner, Runtime, check_offered, check_runtimes, get_runtime,
                       prepare)
from .segmentor import segmentor_form, with_runtime

__all__ = ['AUTO', 'AUTO_TABLE', 'AutoChoice', 'FOLDER_FORMS', 'FORMS', 'MIN_BF16_AGREEMENT', 'NATIVE', 'POLICIES',
           'OpenVINONetwork',
           'RUNTIMES', 'Runner', 'Runtime', 'check_offered', 'check_runtimes', 'choose_runtime', 'get_runtime',
           'onnx_bytes', 'ort_session', 'prepare', 'segmentor_form', 'with_runtime']

"""int8 deployment: NNCF post-training quantization of the OpenVINO model, evaluated in MMSegmentation's test path,
with an accuracy-aware fallback, written as a self-contained folder that MMSegmentation's tools run
(``OpenVINOEncoderDecoder``); and range diagnostics of the fused kernels that explain RepVGG's int8 losses.

Modules: calibration (network inputs from the training split), ptq (NNCF), evaluation (IoUMetric, agreement),
segmentor (the registered OpenVINO segmentor), artifacts (the folder), diagnostics (kernel ranges), pipeline
(``quantize_segmentor``, what tools/quantize.py runs). Needs the deploy extra (openvino, nncf) except diagnostics.
"""
from .diagnostics import (KernelRange, fused_kernels, kernel_range, kernel_ranges, quantize_symmetric, range_report,
                          summarize)
from .segmentor import OpenVINOEncoderDecoder

__all__ = ['KernelRange', 'OpenVINOEncoderDecoder', 'fused_kernels', 'kernel_range', 'kernel_ranges',
           'quantize_symmetric', 'range_report', 'summarize']

"""int8 deployment: NNCF post-training quantization of the OpenVINO model, evaluated in MMSegmentation's test path,
with an accuracy-aware fallback, written as a self-contained folder that MMSegmentation's tools run
(``OpenVINOEncoderDecoder``); and quantization-aware training ending in the same folder.

Modules, one job each: calibration (network inputs from the training split), ptq (NNCF), evaluation (IoUMetric,
agreement), segmentor (the registered OpenVINO segmentor), folder (the int8 folder and the evaluated-model-to-folder
end that PTQ and QAT share), report (``QuantizationReport``: quantization.json as a type, and its tables), pipeline
(``quantize_segmentor``, what tools/quantize.py runs), qat (quantization-aware training). Needs the deploy extra
(openvino, nncf).
"""
from .report import QuantizationReport, load_report
from .segmentor import OpenVINOEncoderDecoder

__all__ = ['OpenVINOEncoderDecoder', 'QuantizationReport', 'load_report']

"""int8 deployment with OpenVINO + NNCF (the deploy extra): post-training quantization with an accuracy-aware
fallback (``pipeline``, what tools/quantize.py runs) and quantization-aware training (``qat``), both ending in a
self-contained folder that MMSegmentation's tools run (``folder``, ``segmentor``) and a typed report (``report``)."""
from .report import QuantizationReport, load_report
from .segmentor import OpenVINOEncoderDecoder

__all__ = ['OpenVINOEncoderDecoder', 'QuantizationReport', 'load_report']

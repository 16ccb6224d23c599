"""int8 and bf16 with OpenVINO + NNCF (the deploy extra): PTQ with an accuracy-aware fallback (``pipeline``) and QAT
(``qat``), ending in a folder MMSegmentation's tools run (``segmentor``) with a report (``report``)."""
from .report import QuantizationReport, load_report
from .segmentor import OpenVINOEncoderDecoder

__all__ = ['OpenVINOEncoderDecoder', 'QuantizationReport', 'load_report']

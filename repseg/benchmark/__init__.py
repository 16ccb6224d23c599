"""Speed, memory and efficiency of segmentors in train, deploy and baseline form and of tools/quantize.py folders,
each row in its precision (fp32, bf16, int8; the RepVGG paper's Table 8 on our machines): ``run_benchmark``
measures, ``write_reports`` writes benchmark.json/.md/.png; see tools/benchmark.py.
"""
from .models import DEFAULT_CONFIGS, FORMS, PRECISIONS, runtime_precision, seeded_segmentor, to_form
from .report import write_reports
from .suite import BACKBONE_CHOICES, INT8_RUNTIMES, run_benchmark

__all__ = ['BACKBONE_CHOICES', 'DEFAULT_CONFIGS', 'FORMS', 'INT8_RUNTIMES', 'PRECISIONS', 'run_benchmark',
           'runtime_precision', 'seeded_segmentor', 'to_form', 'write_reports']

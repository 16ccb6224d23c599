"""Speed, memory and efficiency of segmentors (train, deploy, baseline form, tools/quantize.py folders), each row in
its precision (the RepVGG paper's Table 8 on our machines): ``run_benchmark`` measures, ``write_reports`` writes."""
from .models import DEFAULT_CONFIGS, seeded_segmentor, to_form
from .report import write_reports
from .suite import BACKBONE_CHOICES, INT8_RUNTIMES, run_benchmark

__all__ = ['BACKBONE_CHOICES', 'DEFAULT_CONFIGS', 'INT8_RUNTIMES', 'run_benchmark', 'seeded_segmentor', 'to_form',
           'write_reports']

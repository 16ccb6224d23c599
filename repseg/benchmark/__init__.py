"""Speed, memory and efficiency of segmentors in train, deploy and baseline form (the RepVGG paper's Table 8 on
our machines). ``run_benchmark`` measures, ``write_reports`` writes benchmark.json/.md/.png; see tools/benchmark.py.

Modules: models (build, forms, conv-BN fusion), complexity (MACs), ceiling (3x3-conv microbenchmark), measure
(timing, peak memory, parity), worker (the per-model process), suite (the interleaved run), report (outputs).
"""
from .models import DEFAULT_CONFIGS, FORMS, Backbone, SegLogits, build_segmentor, fuse_conv_bn_pairs, to_form
from .report import machine_name, targets, write_reports
from .suite import run_benchmark

__all__ = ['DEFAULT_CONFIGS', 'FORMS', 'Backbone', 'SegLogits', 'build_segmentor', 'fuse_conv_bn_pairs',
           'machine_name', 'run_benchmark', 'targets', 'to_form', 'write_reports']

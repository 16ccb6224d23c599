import os
from pathlib import Path

import pytest
import torch

import repseg  # noqa: F401  (compat layer + registry)
from mmseg.utils import register_all_modules

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'
CITYSCAPES_SAMPLE = SHARED_DATA / 'cityscapes_sample'
DEMO_FRAME = SHARED_DATA / 'cityscapes_demo_1024x512.png'

torch.set_num_threads(min(2, os.cpu_count() or 1))
register_all_modules(init_default_scope=True)  # as MMSegmentation's own tools do


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BN non-trivial running statistics and affine parameters, so that fusion errors show."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) * 1.0 + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


@pytest.fixture
def shared_data() -> Path:
    if not CITYSCAPES_SAMPLE.is_dir():
        pytest.skip(f'shared test data not found at {SHARED_DATA}')
    return SHARED_DATA

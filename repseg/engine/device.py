"""``--device`` of tools/train.py and tools/test.py: where mmengine's Runner puts the model.

The Runner takes the GPU whenever one is visible (``mmengine.device.get_device``, decided when mmengine is imported),
and so does a multi-process run (NCCL). ``--device cpu`` keeps a run on the CPU on a machine with GPUs: mmengine's
choice is set to the CPU and CUDA is hidden from the processes the run starts (dataloader workers).
"""
import os
from typing import Optional

import mmengine.device.utils as mmengine_device
import torch

from repseg.utils.cuda import cuda_index


def select_device(device: Optional[str], launcher: str = 'none') -> str:
    """Make ``device`` ('cpu', 'cuda' or 'cuda:N'; None: mmengine's choice) the Runner's; returns the device type."""
    if device is None:
        return mmengine_device.get_device()
    kind = device.split(':', 1)[0]
    if kind not in ('cpu', 'cuda') or (kind == 'cpu' and device != 'cpu'):
        raise ValueError(f'--device {device}: expected cpu, cuda or cuda:N')
    if kind == 'cpu':
        mmengine_device.DEVICE = 'cpu'
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
        return 'cpu'
    if not torch.cuda.is_available():
        raise ValueError(f'--device {device}: no CUDA device is visible here (torch.cuda.is_available() is False); '
                         f'use --device cpu')
    if ':' in device:
        if launcher != 'none':
            raise ValueError(f'--device {device}: under --launcher {launcher} each process takes the GPU of its '
                             f'LOCAL_RANK; use --device cuda and CUDA_VISIBLE_DEVICES to choose the GPUs')
        try:
            index = cuda_index(device)
        except RuntimeError:
            index = -1
        if not 0 <= index < torch.cuda.device_count():
            raise ValueError(f'--device {device}: expected cuda:0 to cuda:{torch.cuda.device_count() - 1} on this '
                             f'machine')
        torch.cuda.set_device(index)
    mmengine_device.DEVICE = 'cuda'
    return 'cuda'

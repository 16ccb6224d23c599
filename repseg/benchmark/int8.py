"""The benchmark's on-the-fly int8 runtime ('openvino_int8'): the fp32 OpenVINO model quantized by NNCF while it is
prepared, calibrated on crops of the real Cityscapes frame in ``../shared/data/`` (generated street scenes when it is
absent), one more crop held out for the parity record. Deployable int8 folders come from ``tools/quantize.py``.
"""
from typing import List, Tuple

from torch import Tensor, nn

from repseg.quantization.calibration import street_frames
from repseg.quantization.ptq import quantize_model, weight_bytes
from repseg.runtime.openvino_runtime import OpenVINONetwork, convert_module

INT8_RUNTIME = 'openvino_int8'
CALIBRATION_FRAMES = 4


def calibration_frames(segmentor: nn.Module, shape: Tuple[int, int]) -> Tuple[List[Tensor], Tensor, str]:
    """Calibration crops, one held-out crop and where they come from."""
    pre = segmentor.data_preprocessor
    frames, source = street_frames(tuple(shape), CALIBRATION_FRAMES + 1, mean=pre.mean.flatten().tolist(),
                                   std=pre.std.flatten().tolist(), bgr_to_rgb=bool(pre.channel_conversion))
    return frames[:-1], frames[-1], f'{CALIBRATION_FRAMES} {source}'


def prepare_int8(model: nn.Module, example: Tensor, calibration: List[Tensor]) -> OpenVINONetwork:
    """int8 OpenVINO network of ``model`` calibrated on ``calibration``; records ``weight_bytes`` (fp32 and int8 IR
    constants)."""
    fp32 = convert_module(model, example)
    quantized = quantize_model(fp32, [c.cpu() for c in calibration])
    run = OpenVINONetwork(quantized)
    run.weight_bytes = {'fp32': weight_bytes(fp32), 'int8': weight_bytes(quantized)}
    return run

"""The benchmark's on-the-fly int8 runtime ('openvino_int8'): the fp32 OpenVINO model quantized by NNCF while the
model is prepared, so that int8 speed can be measured beside fp32 without a dataset.

It is the benchmark's, not a deploy runtime: int8 needs calibration data and a measured accuracy, which
``tools/quantize.py`` provides (its folders run in ``repseg.runtime``'s OpenVINO). Calibration here: crops of the
real Cityscapes frame in ``../shared/data/`` when it is there, generated street scenes otherwise, normalized as the
segmentor's data preprocessor does; one more crop is held out for the parity record.
"""
from typing import List, Tuple

from torch import Tensor, nn

from repseg.quantization.calibration import street_frames
from repseg.quantization.ptq import quantize_model, weight_bytes
from repseg.runtime.openvino_runtime import OpenVINONetwork, convert_module

INT8_RUNTIME = 'openvino_int8'
#: Calibration frames (one more is held out for the parity record).
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

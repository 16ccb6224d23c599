"""int8 quantization (OpenVINO + NNCF) or bf16 (OpenVINO) of a trained segmentor, measured on the validation split.

    python tools/quantize.py CONFIG CHECKPOINT --out-dir DIR [--num-calib 300] [--max-drop 1.0]
    python tools/test.py DIR/int8_config.py DIR/int8.pth          # the int8 model in MMSegmentation's test path
    python tools/infer.py DIR/int8_config.py DIR/int8.pth images/ --out-dir out/
    python tools/quantize.py CONFIG CHECKPOINT --precision bf16 --out-dir DIR   # DIR/bf16_config.py, DIR/bf16.pth

When plain PTQ loses more than --max-drop mIoU points, the most harmful layers go back to float (NNCF's accuracy
control); when even that cannot fit (or bf16 loses more), nothing is written and the exit status is 2. bf16 needs a
CPU with avx512_bf16 or amx_bf16. DIR's files and quantization.json: docs/quantization.md.
"""
import argparse

from mmengine.config import DictAction

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.engine import run_cli
from repseg.quantization.pipeline import quantize_segmentor


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='int8 (OpenVINO + NNCF) or bf16 (OpenVINO) of a trained segmentor')
    parser.add_argument('config', help='the training config (or a deploy config)')
    parser.add_argument('checkpoint', help='the trained checkpoint (train or deploy form)')
    parser.add_argument('--out-dir', required=True, help='new folder for the int8 model and quantization.json')
    parser.add_argument('--force', action='store_true', help='replace an --out-dir that holds files (whole)')
    parser.add_argument('--precision', default='int8', choices=['int8', 'bf16'],
                        help='int8 (NNCF, calibrated; the default) or bf16 (needs a CPU with bf16)')
    parser.add_argument('--num-calib', type=int, default=300,
                        help='calibration images from the training split (default 300; fewer if the split is smaller)')
    parser.add_argument('--max-drop', type=float, default=1.0,
                        help='largest acceptable mIoU loss in points (default 1.0); beyond it layers go back to float')
    parser.add_argument('--backend', default='openvino', choices=['openvino'],
                        help='quantization backend: OpenVINO + NNCF (docs/quantization.md says why)')
    parser.add_argument('--preset', default='performance', choices=['performance', 'mixed'],
                        help="NNCF preset: symmetric activations (performance) or asymmetric (mixed)")
    parser.add_argument('--no-fast-bias-correction', dest='fast_bias_correction', action='store_false',
                        help="NNCF's slower, more accurate bias correction")
    parser.add_argument('--max-iterations', type=int, default=None,
                        help='accuracy control: at most this many layer groups go back to float (default: no limit)')
    parser.add_argument('--ranking-subset', type=int, default=None,
                        help='accuracy control: validation images that rank the layers (default: all of them)')
    parser.add_argument('--agreement-images', nargs='*', default=[],
                        help='also report int8 vs fp32 pixel agreement on these images or folders')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. data roots: key=value ... (checked: unknown keys are errors)')
    return parser.parse_args()


def main() -> None:
    options = vars(parse_args())
    del options['backend']  # OpenVINO, the only choice
    quantize_segmentor(**options)


if __name__ == '__main__':
    run_cli(main)

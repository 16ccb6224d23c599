"""Segment images, videos or folders: colour masks (Cityscapes palette), overlays and trainId PNGs; for a video also
an overlay video, and the frames per second achieved.

    python tools/infer.py CONFIG CHECKPOINT img.png more_images/ --out-dir out/
    python tools/infer.py CONFIG CHECKPOINT street.mp4 --out-dir out/    # out/street/frame_*, street_overlay.mp4

Works with the training config + checkpoint and with DIR/deploy_config.py + DIR/deploy.pth alike. For each input
image STEM it writes STEM_color.png, STEM_overlay.png and STEM_trainIds.png (a folder's images keep their relative
paths). A video (any format OpenCV reads) gives those of every frame under STEM/ and STEM_overlay.mp4; a video that
breaks off mid-stream keeps the outputs of the frames before the break. A file that cannot be read is skipped and
named on one line at the end; the run then exits with status 2, after every readable input has its outputs. The
Python API is repseg.apis (init_segmentor, inference, colorize, overlay, infer_to_dir).
"""
import argparse
import sys

import repseg  # noqa: F401  (mmcv-lite compat + registers RepSeg modules)
from repseg.apis import infer_to_dir, init_segmentor
from repseg.engine import run_cli
from repseg.runtime import AUTO, NATIVE, RUNTIMES
from repseg.utils import check_out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description='Segment images with a trained segmentor')
    parser.add_argument('config', help='the config of the checkpoint (a deploy_config.py, int8_config.py, ...)')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('inputs', nargs='+', help='image and video files and/or folders (searched recursively)')
    parser.add_argument('--out-dir', required=True, help='new folder for the masks and overlays')
    parser.add_argument('--force', action='store_true', help='replace an --out-dir that holds files (whole)')
    parser.add_argument('--opacity', type=float, default=0.5, help='weight of the colour mask in the overlay')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default: cpu; on a GPU the network '
                                                        'runs eager)')
    parser.add_argument('--runtime', default=AUTO, choices=[AUTO, NATIVE, *RUNTIMES],
                        help='runtime for the network (default auto: the fastest for this CPU that keeps the '
                             'predictions, bf16 where measured faster, docs/benchmark.md; native: the model\'s own '
                             'precision; eager: plain PyTorch)')
    args = parser.parse_args()
    check_out_dir(args.out_dir, args.force)  # before the model is loaded; again when the result is moved in place
    model = init_segmentor(args.config, args.checkpoint, device=args.device, runtime=args.runtime)
    result = infer_to_dir(model, args.inputs, args.out_dir, opacity=args.opacity, force=args.force)
    skipped = f' ({len(result.skipped)} unreadable input file(s) skipped)' if result.skipped else ''
    print(f'wrote {len(result.written)} files to {args.out_dir}{skipped}')
    for video in result.videos:
        print(f'{video.source}: {video.frames} frames in {video.seconds:.1f} s, {video.fps:.2f} frames per second '
              f'(decoding, network, writing); overlay video {video.video}')
    for path in result.ignored:
        print(f'note: {path}: not an image or video file name; not used', file=sys.stderr)
    for _, reason in result.skipped:
        print(f'error: {" ".join(reason.split())}; skipped', file=sys.stderr)
    if result.skipped:
        sys.exit(2)


if __name__ == '__main__':
    run_cli(main)

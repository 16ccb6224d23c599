"""Images, videos and folders in; colour masks, overlays and trainId PNGs out, and an overlay video per video (what
tools/infer.py does)."""
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence, Tuple, Union

import cv2
import numpy as np
from torch import nn

from repseg.utils.io import atomic_dir, write_file
from repseg.utils.progress import LineProgressBar
from .inference import inference, load_image
from .visualize import colorize, overlay

IMAGE_SUFFIXES = frozenset({'.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp'})
#: Read with OpenCV's video reader (FFmpeg): any container and codec it decodes.
VIDEO_SUFFIXES = frozenset({'.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv'})
INPUT_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES
#: The overlay video's codec and container (MPEG-4 Part 2, which every OpenCV build with FFmpeg writes).
VIDEO_FOURCC, VIDEO_OUT_SUFFIX = 'mp4v', '.mp4'


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def collect_images(inputs: Sequence[Union[str, Path]]) -> List[Tuple[Path, Path]]:
    """(image or video, output stem) pairs (a folder's by relative path); refuses two inputs writing one output."""
    pairs: List[Tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob('*') if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
            if not found:
                raise FileNotFoundError(f'{item}: folder holds no images or videos '
                                        f'({", ".join(sorted(INPUT_SUFFIXES))})')
            pairs += [(p, p.relative_to(item).with_suffix('')) for p in found]
        elif item.is_file():
            pairs.append((item, Path(item.stem)))
        else:
            raise FileNotFoundError(f'{item}: no such image, video or folder')
    seen: Dict[Path, Path] = {}
    for src, stem in pairs:
        if stem in seen:
            raise ValueError(f'{src} and {seen[stem]} would both write {stem}_*; pass them in separate runs')
        seen[stem] = src
    return pairs


def ignored_files(inputs: Sequence[Union[str, Path]]) -> List[Path]:
    """Files under the input folders that ``collect_images`` leaves out (no image or video suffix), to name them."""
    return sorted(p for item in map(Path, inputs) if item.is_dir() for p in item.rglob('*')
                  if p.is_file() and p.suffix.lower() not in INPUT_SUFFIXES)


class VideoRun(NamedTuple):
    """One video: frames segmented, seconds spent (decoding, model, writing) and the overlay video written."""
    source: Path
    frames: int
    seconds: float
    video: Path

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class BatchResult(NamedTuple):
    """What ``infer_to_dir`` did: files written, unreadable inputs with the reason, skipped non-images, videos."""
    written: List[Path]
    skipped: List[Tuple[Path, str]]
    ignored: List[Path]
    videos: List[VideoRun] = []


def _write_outputs(model: nn.Module, image: np.ndarray, stem: Path, tmp: Path, out_dir: Path, opacity: float,
                   written: List[Path]) -> np.ndarray:
    """STEM_{color,overlay,trainIds}.png of one image or frame; returns the overlay."""
    pred = inference(model, image)
    blended = overlay(image, pred, opacity)
    for kind, array in (('color', colorize(pred)), ('overlay', blended), ('trainIds', pred)):
        name = f'{stem}_{kind}.png'
        ok, data = cv2.imencode('.png', array)
        if not ok:
            raise ValueError(f'{out_dir / name}: cannot encode an image of shape {array.shape} as PNG')
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        write_file(tmp / name, data.tobytes())
        written.append(out_dir / name)
    return blended


def _open_video(src: Path) -> Tuple[cv2.VideoCapture, int, float]:
    """The reader, its announced frame count (0: unknown) and frame rate; one line for a file that is no video."""
    capture = cv2.VideoCapture(str(src))
    if not capture.isOpened():
        raise ValueError(f'{src}: not a readable video (OpenCV cannot open it)')
    return capture, max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))), capture.get(cv2.CAP_PROP_FPS) or 25.0


def _segment_video(model: nn.Module, capture: Tuple[cv2.VideoCapture, int, float], src: Path, stem: Path, tmp: Path,
                   out_dir: Path, opacity: float, result: BatchResult, bar: LineProgressBar) -> None:
    """Every frame's outputs under STEM/ and STEM_overlay.mp4. A stream that breaks off keeps the frames before the
    break (and the overlay video of them) and is reported as skipped, naming the frame."""
    capture, announced, rate = capture
    name = stem.parent / f'{stem.name}_overlay{VIDEO_OUT_SUFFIX}'
    writer, frames, start = None, 0, time.perf_counter()
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            blended = _write_outputs(model, frame, stem / f'frame_{frames:06d}', tmp, out_dir, opacity, result.written)
            if writer is None:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                writer = cv2.VideoWriter(str(tmp / name), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), rate,
                                         (frame.shape[1], frame.shape[0]))
                if not writer.isOpened():
                    raise ValueError(f'{out_dir / name}: OpenCV cannot write {VIDEO_FOURCC} video here')
            writer.write(blended)
            frames += 1
            bar.update()
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if frames:
        result.written.append(out_dir / name)
        result.videos.append(VideoRun(src, frames, time.perf_counter() - start, out_dir / name))
    if not frames:
        result.skipped.append((src, f'{src}: not a readable video (no frame decodes)'))
    elif frames < announced:
        result.skipped.append((src, f'{src}: the video breaks off after frame {frames} of {announced}; the frames '
                                    f'before it have their outputs'))


def infer_to_dir(model: nn.Module, inputs: Sequence[Union[str, Path]], out_dir: Union[str, Path],
                 opacity: float = 0.5, force: bool = False) -> BatchResult:
    """Write ``STEM_color.png``, ``STEM_overlay.png`` and ``STEM_trainIds.png`` of every image under ``out_dir``
    (``atomic_dir``), and for a video those of every frame under ``STEM/`` and ``STEM_overlay.mp4``; an unreadable
    file is skipped and listed, so that it does not cost the inputs after it."""
    pairs = collect_images(inputs)
    out_dir = Path(out_dir)
    result = BatchResult([], [], ignored_files(inputs), [])
    with atomic_dir(out_dir, force) as tmp:
        bar = LineProgressBar(sum(_frame_count(src) if is_video(src) else 1 for src, _ in pairs))
        for src, stem in pairs:
            if is_video(src):
                try:
                    capture = _open_video(src)
                except ValueError as err:
                    result.skipped.append((src, str(err)))
                else:
                    _segment_video(model, capture, src, stem, tmp, out_dir, opacity, result, bar)
                continue
            try:
                image = load_image(src)
            except (ValueError, OSError) as err:
                result.skipped.append((src, str(err)))
            else:
                _write_outputs(model, image, stem, tmp, out_dir, opacity, result.written)
            bar.update()
        bar.finish()  # short of its count where a video broke off
    return result


def _frame_count(src: Path) -> int:
    """A video's announced frame count for the progress bar (0 where unknown or unreadable)."""
    capture = cv2.VideoCapture(str(src))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) if capture.isOpened() else 0
    finally:
        capture.release()

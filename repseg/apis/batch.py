"""Images and folders in, colour masks, overlays and trainId PNGs out (what tools/infer.py does)."""
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence, Tuple, Union

import cv2
from mmengine.utils import ProgressBar
from torch import nn

from repseg.utils.io import atomic_dir, write_file
from .inference import inference, load_image
from .visualize import colorize, overlay

IMAGE_SUFFIXES = frozenset({'.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp'})


def collect_images(inputs: Sequence[Union[str, Path]]) -> List[Tuple[Path, Path]]:
    """(image, output stem) pairs (a folder's images by relative path); refuses two inputs writing one output."""
    pairs: List[Tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob('*') if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f'{item}: folder holds no images ({", ".join(sorted(IMAGE_SUFFIXES))})')
            pairs += [(p, p.relative_to(item).with_suffix('')) for p in found]
        elif item.is_file():
            pairs.append((item, Path(item.stem)))
        else:
            raise FileNotFoundError(f'{item}: no such image file or folder')
    seen: Dict[Path, Path] = {}
    for src, stem in pairs:
        if stem in seen:
            raise ValueError(f'{src} and {seen[stem]} would both write {stem}_*.png; pass them in separate runs')
        seen[stem] = src
    return pairs


def ignored_files(inputs: Sequence[Union[str, Path]]) -> List[Path]:
    """Files under the input folders that ``collect_images`` leaves out (no image suffix), so they can be named."""
    return sorted(p for item in map(Path, inputs) if item.is_dir() for p in item.rglob('*')
                  if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)


class BatchResult(NamedTuple):
    """What ``infer_to_dir`` did: files written, unreadable inputs with the reason, and skipped non-images."""
    written: List[Path]
    skipped: List[Tuple[Path, str]]
    ignored: List[Path]


def infer_to_dir(model: nn.Module, inputs: Sequence[Union[str, Path]], out_dir: Union[str, Path],
                 opacity: float = 0.5, force: bool = False) -> BatchResult:
    """Write ``STEM_color.png``, ``STEM_overlay.png`` and ``STEM_trainIds.png`` of every input under ``out_dir``
    (``atomic_dir``); an unreadable file is skipped and listed, so that it does not cost the images after it."""
    pairs = collect_images(inputs)
    out_dir = Path(out_dir)
    result = BatchResult([], [], ignored_files(inputs))
    with atomic_dir(out_dir, force) as tmp:
        bar = ProgressBar(len(pairs))
        for src, stem in pairs:
            try:
                image = load_image(src)
            except (ValueError, OSError) as err:
                result.skipped.append((src, str(err)))
            else:
                pred = inference(model, image)
                for kind, array in (('color', colorize(pred)), ('overlay', overlay(image, pred, opacity)),
                                    ('trainIds', pred)):
                    name = f'{stem}_{kind}.png'
                    ok, data = cv2.imencode('.png', array)
                    if not ok:
                        raise ValueError(f'{out_dir / name}: cannot encode an image of shape {array.shape} as PNG')
                    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                    write_file(tmp / name, data.tobytes())
                    result.written.append(out_dir / name)
            bar.update()
    return result

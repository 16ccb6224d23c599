"""Make the ``*_gtFine_labelTrainIds.png`` maps that training reads from the official ``*_gtFine_polygons.json``.

The download ships polygons and labelIds (0-33); the 19-class models train on trainIds. The conversion is
cityscapesscripts' own; each map is renamed into place, so an interrupted run leaves no half file a re-run would skip.
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Tuple, Union

from mmengine.utils import track_parallel_progress, track_progress

SPLITS = ('train', 'val')
POLYGONS = '_gtFine_polygons.json'
TRAIN_IDS = '_gtFine_labelTrainIds.png'
LAYOUT = 'DATA_ROOT/{leftImg8bit,gtFine}/{train,val}/<city>/ (see data/README.md)'


@dataclass
class PrepSummary:
    converted: int
    skipped: int


def check_layout(data_root: Union[str, os.PathLike], splits: Sequence[str] = SPLITS) -> None:
    """Raise a one-line FileNotFoundError naming the first folder of the Cityscapes layout that is missing."""
    root = Path(data_root)
    for folder in [root] + [root / kind / split for kind in ('leftImg8bit', 'gtFine') for split in splits]:
        if not folder.is_dir():
            raise FileNotFoundError(f'{folder}: missing; expected the Cityscapes layout {LAYOUT}')
        if folder != root and not any(p.is_dir() for p in folder.iterdir()):
            raise FileNotFoundError(f'{folder}: no <city> folders in it; expected the Cityscapes layout {LAYOUT}')


def convert_one(task: Tuple[str, str]) -> None:
    """Convert one polygons json (module level, so that worker processes can pickle it)."""
    from cityscapesscripts.preparation.json2labelImg import json2labelImg
    json_path, out_path = task
    tmp = f'{out_path}.tmp-{os.getpid()}.png'  # .png last: PIL picks the format from the suffix
    try:
        json2labelImg(json_path, tmp, 'trainIds')
        os.replace(tmp, out_path)
    except (Exception, SystemExit) as err:  # cityscapesscripts calls sys.exit() on an unknown label
        if os.path.exists(tmp):
            os.unlink(tmp)
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f'{json_path}: cannot convert to trainIds ({type(err).__name__}: {detail})') from None


def prepare_cityscapes(data_root: Union[str, os.PathLike], nproc: int = 8, force: bool = False,
                       splits: Sequence[str] = SPLITS) -> PrepSummary:
    """Check the layout, then convert every polygons json whose labelTrainIds map is missing (all with ``force``)."""
    check_layout(data_root, splits)
    tasks = []  # (polygons json, labelTrainIds png) of every annotated frame; an empty split is an error
    for split in splits:
        folder = Path(data_root) / 'gtFine' / split
        jsons = sorted(folder.glob(f'*/*{POLYGONS}'))
        if not jsons and not any(folder.glob(f'*/*{TRAIN_IDS}')):
            raise FileNotFoundError(f'{folder}: no <city>/*{POLYGONS} files; expected the gtFine annotations from '
                                    f'gtFine_trainvaltest.zip (see data/README.md)')
        tasks += [(str(j), str(j)[:-len(POLYGONS)] + TRAIN_IDS) for j in jsons]
    todo = tasks if force else [t for t in tasks if not os.path.exists(t[1])]
    if todo:
        if nproc > 1 and len(todo) > 1:
            track_parallel_progress(convert_one, todo, nproc=min(nproc, len(todo)), keep_order=False)
        else:
            track_progress(convert_one, todo)
    return PrepSummary(converted=len(todo), skipped=len(tasks) - len(todo))

"""Checks run before a Runner is built, so that a wrong path fails at once with a message that names it."""
import os.path as osp
from pathlib import Path
from typing import Sequence

from mmengine.config import Config

#: What each dataset type expects under its data_root, for the error message (data/README.md has the details).
LAYOUTS = {'CamVidDataset': 'the SegNet CamVid layout {root}{{train,val,test}}/ with {root}{{train,val,test}}annot/'}
DEFAULT_LAYOUT = 'the Cityscapes layout {root}{{leftImg8bit,gtFine}}/{{train,val}}/<city>/'


def check_data_roots(cfg: Config, loaders: Sequence[str]) -> None:
    """Every image and label folder of the named dataloaders must exist."""
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        dataset = loader['dataset']
        root = dataset.get('data_root', '')
        for key, rel in dataset.get('data_prefix', {}).items():
            folder = osp.join(root, rel)
            if not osp.isdir(folder):
                layout = LAYOUTS.get(str(dataset.get('type', '')).split('.')[-1], DEFAULT_LAYOUT)
                raise FileNotFoundError(f'{folder}: missing ({name}.dataset.data_prefix.{key}); expected '
                                        f'{layout.format(root=root or "DATA_ROOT/")} (see data/README.md)')


def check_fresh_work_dir(work_dir: str, resume: bool) -> None:
    """A new run must not overwrite the checkpoints of an earlier one in the same work dir."""
    if resume:
        return
    earlier = sorted(p.name for p in Path(work_dir).glob('*.pth')) if osp.isdir(work_dir) else []
    if earlier:
        shown = ', '.join(earlier[:3]) + (' ...' if len(earlier) > 3 else '')
        raise FileExistsError(f'{work_dir}: holds checkpoints of an earlier run ({shown}); pass --resume to continue '
                              f'it or choose another --work-dir')

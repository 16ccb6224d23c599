"""A metric that writes Cityscapes labelId predictions and, optionally, grades them with the official evaluator."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS

from ..datasets.labels import train_id_to_id_lut
from ..utils.io import WriteError, as_write_error, atomic_write
from .cityscapes_official import evaluate_official, official_gt_path, prediction_name


@METRICS.register_module()
class CityscapesLabelIdWriter(BaseMetric):
    """Write each prediction as ``OUT_DIR/<city>_<seq>_<frame>_pred_labelIds.png``; ``official=True`` also reports the
    official class mIoU as ``official_mIoU`` (without CityscapesMetric's instance-level path, broken with numpy >= 2.4).
    ``shown_dir``: where a staged OUT_DIR is moved when complete, named in messages."""

    default_prefix = 'cityscapes'

    def __init__(self, out_dir: str, official: bool = False, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, shown_dir: Optional[str] = None, **kwargs):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.out_dir = out_dir
        self.shown_dir = shown_dir or out_dir
        self.official = official
        self._lut = train_id_to_id_lut()

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'][0].cpu().numpy().astype('uint8')
            out_path = osp.join(self.out_dir, prediction_name(sample['img_path']))
            ok, buf = cv2.imencode('.png', self._lut[pred])
            if not ok:
                raise RuntimeError(f'{out_path}: PNG encoding failed')
            try:
                with atomic_write(out_path) as handle:
                    handle.write(buf.tobytes())
            except WriteError as err:
                raise as_write_error(err, osp.join(self.shown_dir, prediction_name(sample['img_path']))) from None
            self.results.append((out_path, official_gt_path(sample.get('seg_map_path', ''))))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        print_log(f'wrote {len(results)} labelId predictions to {self.shown_dir}', logger='current')
        if not self.official:
            return {}
        preds, gts = zip(*results)
        scores = evaluate_official(preds, gts)
        table = '\n'.join(f'{name:>15s}: {iou:6.2f}' for name, iou in scores['class_iou'].items())
        print_log(f'official Cityscapes class IoU (cityscapesscripts):\n{table}', logger='current')
        return dict(official_mIoU=round(scores['mIoU'], 2))

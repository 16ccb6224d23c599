"""Cityscapes predictions as labelId PNGs and the official pixel-level evaluation (cityscapesscripts).

The evaluator's instance-level path uses ``numpy.in1d`` (removed in numpy 2.4) and is irrelevant to class mIoU, so
it is switched off, as are its JSON export and console output.
"""
import contextlib
import io
import os.path as osp
from typing import Dict, Sequence

import numpy as np

GT_SUFFIX = '_gtFine_labelIds.png'
TRAIN_ID_SUFFIX = '_gtFine_labelTrainIds.png'
IMG_SUFFIX = '_leftImg8bit.png'


def prediction_name(img_path: str) -> str:
    """Name the official evaluator matches: ``<city>_<seq>_<frame>_leftImg8bit.png`` -> same stem + ``.png``."""
    base = osp.basename(img_path)
    stem = base[:-len(IMG_SUFFIX)] if base.endswith(IMG_SUFFIX) else osp.splitext(base)[0]
    return f'{stem}_pred_labelIds.png'


def official_gt_path(seg_map_path: str) -> str:
    """The labelIds ground truth beside a labelTrainIds map (the official evaluator grades against labelIds)."""
    if seg_map_path.endswith(TRAIN_ID_SUFFIX):
        return seg_map_path[:-len(TRAIN_ID_SUFFIX)] + GT_SUFFIX
    return seg_map_path


def evaluate_official(pred_files: Sequence[str], gt_files: Sequence[str]) -> Dict[str, object]:
    """Run cityscapesscripts' pixel-level evaluation; returns {'mIoU': %, 'class_iou': {name: %}}."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
    if len(pred_files) != len(gt_files) or not pred_files:
        raise ValueError(f'official evaluation needs one prediction per ground truth, got {len(pred_files)} '
                         f'predictions for {len(gt_files)} ground-truth files')
    for path in list(gt_files) + list(pred_files):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path}: missing (official Cityscapes evaluation needs it)')
    args = cs_eval.args
    args.evalInstLevelScore = args.evalPixelAccuracy = args.JSONOutput = False
    args.quiet = True
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            results = cs_eval.evaluateImgLists(list(pred_files), list(gt_files), args)
    except SystemExit:  # cityscapesscripts reports errors with print + sys.exit
        raise RuntimeError(f'cityscapesscripts evaluation failed: {out.getvalue().strip().splitlines()[-1]}') from None
    class_iou = {name: 100 * score for name, score in results['classScores'].items() if not np.isnan(score)}
    return dict(mIoU=100 * cs_eval.getScoreAverage(results['classScores'], args), class_iou=class_iou)

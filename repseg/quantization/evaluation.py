"""fp32 and int8 networks evaluated on the validation split through MMSegmentation's test path.

Each network is plugged into the same ``OpenVINOEncoderDecoder`` (``IRNetwork.use``) and run with ``test_step``,
so the data preprocessor, sliding windows or whole-image inference, resizing and argmax are MMSegmentation's;
the metric is the config's ``IoUMetric`` (``process`` and ``compute_metrics``: the figures ``tools/test.py``
prints). Pixel agreement: the fraction of pixels whose predicted class equals the reference network's, on the
validation split or (``agreement_on_images``) on other images through the inference API.
"""
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.utils import ProgressBar
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from torch import Tensor, nn

from repseg.apis import collect_images, segment
from .calibration import build_split
from .report import ImageAgreement, Int8Result, Metrics

Network = Callable[[Tensor], Tensor]


@dataclass
class Evaluation:
    """Metrics per network (``mIoU``, ``mAcc``, ``aAcc`` as ``IoUMetric`` reports them) and pixel agreement of
    each network with the first one."""

    metrics: Dict[str, Dict[str, float]]
    agreement: Dict[str, float] = field(default_factory=dict)
    images: int = 0

    def of(self, name: str) -> Metrics:
        return Metrics(**{k: self.metrics[name][k] for k in ('mIoU', 'mAcc', 'aAcc')})

    @property
    def drop(self) -> float:
        """fp32 mIoU minus int8 mIoU, in points (rounded as the metric is)."""
        return round(self.metrics['fp32']['mIoU'] - self.metrics['int8']['mIoU'], 2)

    def int8_result(self, layers_in_float: List[str]) -> Int8Result:
        return Int8Result(self.of('int8'), self.drop, self.agreement['int8'], list(layers_in_float))

    def __str__(self) -> str:
        return (f'fp32 mIoU {self.metrics["fp32"]["mIoU"]:.2f}, int8 {self.metrics["int8"]["mIoU"]:.2f} (drop '
                f'{self.drop:.2f}), pixel agreement {100 * self.agreement["int8"]:.2f}%')


def iou_metric(cfg: Config, dataset: Any) -> Any:
    """The config's validation ``IoUMetric`` (its ignore index and options), bound to ``dataset``'s classes."""
    spec = cfg.get('val_evaluator') or cfg.get('test_evaluator') or dict(type='IoUMetric', iou_metrics=['mIoU'])
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    chosen = next((dict(s) for s in specs if dict(s).get('type') in ('IoUMetric', 'mmseg.IoUMetric')), None)
    if chosen is None:
        raise ValueError(f'{cfg.filename}: val_evaluator has no IoUMetric ({[dict(s).get("type") for s in specs]}); '
                         f'quantization is measured in mIoU')
    chosen['iou_metrics'] = ['mIoU']
    metric = METRICS.build(chosen)
    if not isinstance(metric, IoUMetric):
        raise ValueError(f'{cfg.filename}: val_evaluator type {chosen["type"]!r} is not an IoUMetric')
    metric.dataset_meta = dataset.metainfo
    return metric


def image_miou(result: Sequence[Tensor]) -> float:
    """mIoU of one image (over the classes present in its prediction or label), in points."""
    intersect, union = result[0].double(), result[1].double()
    present = union > 0
    return float((intersect[present] / union[present]).mean() * 100) if present.any() else 100.0


def total_miou(results: Sequence[Sequence[Tensor]]) -> float:
    """mIoU over a set of images from ``IoUMetric`` per-image results, unrounded, in points (nan classes skipped)."""
    intersect = sum(r[0].double() for r in results)
    union = sum(r[1].double() for r in results)
    with np.errstate(invalid='ignore', divide='ignore'):
        return float(np.nanmean((intersect / union).numpy()) * 100)


def predict(segmentor: nn.Module, network: Network, data: dict) -> list:
    """``segmentor.test_step`` on a private copy of ``data`` with ``network`` plugged in."""
    segmentor.network.use(network)
    with torch.no_grad():
        return segmentor.test_step(copy.deepcopy(data))


class ValidationItems:
    """The validation split as collated one-image test batches (lazy; what NNCF's validation dataset iterates)."""

    def __init__(self, cfg: Config):
        self.dataset = build_split(cfg, 'val_dataloader')

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return pseudo_collate([self.dataset[i]])

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def evaluate(cfg: Config, segmentor: nn.Module, networks: Mapping[str, Network],
             items: Optional[ValidationItems] = None, progress: bool = True) -> Evaluation:
    """Every network on the whole validation split (one pass over the images): metrics and agreement."""
    items = items or ValidationItems(cfg)
    names = list(networks)
    metrics = {name: iou_metric(cfg, items.dataset) for name in names}
    same = {name: 0 for name in names}
    pixels = 0
    bar = ProgressBar(len(items)) if progress else None
    for data in items:
        preds = {}
        for name in names:
            out = predict(segmentor, networks[name], data)
            metrics[name].process(data, [sample.to_dict() for sample in out])
            preds[name] = torch.cat([sample.pred_sem_seg.data.flatten() for sample in out])
        reference = preds[names[0]]
        pixels += reference.numel()
        for name in names:
            same[name] += int((preds[name] == reference).sum())
        if bar:
            bar.update()
    if bar:
        print()
    results = {name: {k: round(float(v), 2) for k, v in metric.compute_metrics(metric.results).items()}
               for name, metric in metrics.items()}
    for name, metric in metrics.items():
        results[name]['mIoU_unrounded'] = total_miou(metric.results)
    return Evaluation(results, {name: same[name] / max(pixels, 1) for name in names}, len(items))


def validation_fn(cfg: Config, segmentor: nn.Module, items: ValidationItems, wrap: Callable[[Any], Network]
                  ) -> Callable[[Any, Iterable[dict]], Tuple[float, List[float]]]:
    """NNCF's ``validation_fn``: (compiled OpenVINO model, validation items) -> (mIoU in points over the items,
    per-image mIoU). ``wrap`` turns the compiled model into a ``Tensor -> Tensor`` network."""
    metric = iou_metric(cfg, items.dataset)

    def validate(compiled: Any, data_items: Iterable[dict]) -> Tuple[float, List[float]]:
        network = wrap(compiled)
        metric.results = []
        for data in data_items:
            metric.process(data, [sample.to_dict() for sample in predict(segmentor, network, data)])
        results, metric.results = metric.results, []
        return total_miou(results), [image_miou(r) for r in results]
    return validate


def agreement_on_images(segmentor: nn.Module, networks: Dict[str, Network],
                        images: Sequence[Union[str, Path]]) -> List[ImageAgreement]:
    """Pixel agreement of networks 'int8' and 'fp32' on extra images (e.g. real street frames), through the inference
    API (``segmentor``: an ``ir_segmentor``)."""
    out = []
    for path, _ in collect_images(images):
        preds = {}
        for name, network in networks.items():
            segmentor.network.use(network)
            preds[name] = segment(segmentor, path).pred_sem_seg.data
        agree = float((preds['fp32'] == preds['int8']).float().mean())
        out.append(ImageAgreement(str(path), list(preds['fp32'].shape[-2:]), agree))
    return out

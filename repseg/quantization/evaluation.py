"""fp32 and int8 or bf16 networks on the validation split, each plugged into one ``OpenVINOEncoderDecoder``, run with
``test_step`` and measured with the config's ``IoUMetric`` (as ``tools/test.py`` prints it), and pixel agreement."""
import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from torch import Tensor, nn

from repseg.apis import collect_images, segment
from repseg.utils.progress import LineProgressBar
from .calibration import build_split
from .report import Metrics

Network = Callable[[Tensor], Tensor]


@dataclass
class Evaluation:
    """``IoUMetric``'s figures per network, and the fraction of pixels where each agrees with the first one ('fp32')."""

    metrics: Dict[str, Dict[str, float]]
    agreement: Dict[str, float]
    images: int

    def of(self, name: str) -> Metrics:
        return Metrics(**{k: self.metrics[name][k] for k in ('mIoU', 'mAcc', 'aAcc')})

    @property
    def reduced(self) -> str:  # the reduced-precision network, 'int8' or 'bf16'
        return next(name for name in self.metrics if name != 'fp32')

    @property
    def drop(self) -> float:
        """fp32 mIoU minus the reduced-precision mIoU, in points (rounded as the metric is)."""
        return round(self.metrics['fp32']['mIoU'] - self.metrics[self.reduced]['mIoU'], 2)

    def int8_result(self, layers_in_float: List[str]) -> Dict[str, Any]:
        """The report's ``plain_ptq`` block."""
        return dict(int8=dataclasses.asdict(self.of('int8')), drop=self.drop, pixel_agreement=self.agreement['int8'],
                    layers_in_float=list(layers_in_float))

    def __str__(self) -> str:
        name = self.reduced
        return (f'fp32 mIoU {self.metrics["fp32"]["mIoU"]:.2f}, {name} {self.metrics[name]["mIoU"]:.2f} (drop '
                f'{self.drop:.2f}), pixel agreement {100 * self.agreement[name]:.2f}%')


def iou_metric(cfg: Config, dataset: Any) -> IoUMetric:
    """The config's validation ``IoUMetric`` (its ignore index and options), bound to ``dataset``'s classes."""
    spec = cfg.get('val_evaluator') or cfg.get('test_evaluator') or dict(type='IoUMetric')
    specs = [dict(s) for s in (spec if isinstance(spec, (list, tuple)) else [spec])]
    chosen = next((s for s in specs if s.get('type') in ('IoUMetric', 'mmseg.IoUMetric')), None)
    if chosen is None:
        raise ValueError(f'{cfg.filename}: val_evaluator has no IoUMetric ({[s.get("type") for s in specs]}); '
                         f'quantization is measured in mIoU')
    metric = METRICS.build(dict(chosen, iou_metrics=['mIoU']))
    metric.dataset_meta = dataset.metainfo
    return metric


def total_miou(results: Sequence[Sequence[Tensor]]) -> float:
    """Unrounded mIoU in points over ``IoUMetric`` per-image results, skipping classes absent from both."""
    intersect, union = sum(r[0].double() for r in results), sum(r[1].double() for r in results)
    if not (union > 0).any():
        return 100.0
    with np.errstate(invalid='ignore', divide='ignore'):
        return float(np.nanmean((intersect / union).numpy()) * 100)


def predict(segmentor: nn.Module, network: Network, data: dict) -> list:
    """``segmentor.test_step`` on a private copy of ``data`` with ``network`` plugged in."""
    segmentor.network.use(network)
    with torch.no_grad():
        return segmentor.test_step(copy.deepcopy(data))


class ValidationItems:
    """The validation split as collated one-image test batches, made when asked (what NNCF's validation set holds)."""

    def __init__(self, cfg: Config):
        self.dataset = build_split(cfg, 'val_dataloader')

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:  # an IndexError past the end also ends iteration
        if not 0 <= i < len(self):
            raise IndexError(i)
        return pseudo_collate([self.dataset[i]])


def evaluate(cfg: Config, segmentor: nn.Module, networks: Mapping[str, Network], items: ValidationItems
             ) -> Evaluation:
    """Every network on the whole validation split (one pass over the images): metrics and agreement."""
    metrics = {name: iou_metric(cfg, items.dataset) for name in networks}
    same, pixels = dict.fromkeys(networks, 0), 0
    bar = LineProgressBar(len(items))
    for data in items:
        preds = {}
        for name, network in networks.items():
            out = predict(segmentor, network, data)
            metrics[name].process(data, [sample.to_dict() for sample in out])
            preds[name] = torch.cat([sample.pred_sem_seg.data.flatten() for sample in out])
        reference = next(iter(preds.values()))
        pixels += reference.numel()
        for name, pred in preds.items():
            same[name] += int((pred == reference).sum())
        bar.update()
    results = {name: {k: round(float(v), 2) for k, v in metric.compute_metrics(metric.results).items()}
               for name, metric in metrics.items()}
    return Evaluation(results, {name: same[name] / max(pixels, 1) for name in networks}, len(items))


def validation_fn(cfg: Config, segmentor: nn.Module, items: ValidationItems, wrap: Callable[[Any], Network]
                  ) -> Callable[[Any, Iterable[dict]], Tuple[float, List[float]]]:
    """NNCF's ``validation_fn``: (compiled model, items) -> (mIoU, per-image mIoU); ``wrap`` makes it a network."""
    metric = iou_metric(cfg, items.dataset)

    def validate(compiled: Any, data_items: Iterable[dict]) -> Tuple[float, List[float]]:
        network, metric.results = wrap(compiled), []
        for data in data_items:
            metric.process(data, [sample.to_dict() for sample in predict(segmentor, network, data)])
        results, metric.results = metric.results, []
        return total_miou(results), [total_miou([r]) for r in results]
    return validate


def agreement_on_images(segmentor: nn.Module, networks: Dict[str, Network],
                        images: Sequence[Union[str, Path]]) -> List[Dict[str, Any]]:
    """Pixel agreement of the non-'fp32' network with 'fp32' on extra images, through the inference API."""
    reduced = next(name for name in networks if name != 'fp32')
    out = []
    for path, _ in collect_images(images):
        preds = {}
        for name, network in networks.items():
            segmentor.network.use(network)
            preds[name] = segment(segmentor, path).pred_sem_seg.data
        out.append(dict(image=str(path), shape=list(preds['fp32'].shape[-2:]),
                        pixel_agreement=float((preds['fp32'] == preds[reduced]).float().mean())))
    return out

"""The one primary-metric rule per task: which numbers of a finished run are
compared, where they sit in ``metrics.json``, in which unit, and which way is better.

Values are reported in points: COCO AP (0-1 in mmdet's records) x 100; ADE20K
mIoU/mAcc/aAcc and classification top-1/top-5 are percentages already.

A metric may be the headline of some datasets only (``headline_for``): the
classification datasets of Kornblith et al. (2019) each have their own number,
mean per-class accuracy for FGVC Aircraft, Pets, Caltech-101 and Flowers-102,
11-point mAP for VOC 2007, top-1 elsewhere. A dataset's headline metrics are
those naming it, else the kind's general ones (``headline_for`` empty).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

__all__ = ["Metric", "METRICS", "metrics_of", "metric_by_id", "headline_metrics", "extract_metrics",
           "TASK_NAMES", "KINDS"]

KINDS = ("pretrain", "cls_finetune", "mmdet", "mmseg")
# What compare calls each kind of run.
TASK_NAMES = {"pretrain": "pretraining", "cls_finetune": "classification", "mmdet": "detection",
              "mmseg": "segmentation"}


@dataclass(frozen=True)
class Metric:
    id: str                   # what --metric takes, e.g. box_AP
    label: str                # for tables, e.g. "box AP"
    kind: str                 # the kind of run it belongs to
    path: Tuple[str, ...]     # keys into metrics.json
    scale: float = 1.0        # to points
    higher_is_better: bool = True
    headline: bool = False    # shown by default
    headline_for: Tuple[str, ...] = ()  # only these datasets' headline (empty: every dataset without its own)
    minus: Tuple[str, ...] = ()         # a difference: the value at ``path`` less the value at ``minus``
    digits: int = 2                     # decimals in tables


def _det(id_, label, key, headline=False):
    return Metric(id_, label, "mmdet", ("metrics", key), scale=100.0, headline=headline)


METRICS: List[Metric] = [
    Metric("top1", "ImageNet top-1", "pretrain", ("final", "top1"), headline=True),
    Metric("top5", "ImageNet top-5", "pretrain", ("final", "top5")),
    Metric("train_loss", "final train loss", "pretrain", ("train_loss_last_epoch",), higher_is_better=False,
           headline=True, digits=3),
    Metric("val_loss", "final validation loss", "pretrain", ("final", "loss"), higher_is_better=False, digits=3),
    # validation loss less the last epoch's mean training loss: near 0 (or below) for a model that underfits
    Metric("loss_gap", "val - train loss", "pretrain", ("final", "loss"), higher_is_better=False,
           minus=("train_loss_last_epoch",), digits=3),
    # The paper's gradient diagnostics over its early phase (the first 1/6 of training; pretrain/run.py
    # EARLY_PHASE): the mean of the points measured there after step 0, the distance at the last of them.
    # "Better" is the direction the paper reports for early dropout in an underfitting model: lower
    # GDV, GDE and gradient norm, a longer way from the initial weights.
    Metric("gdv", "GDV (early phase mean)", "pretrain", ("diagnostics", "gdv_mean"), higher_is_better=False,
           digits=4),
    Metric("gde", "GDE (early phase mean)", "pretrain", ("diagnostics", "gde_mean"), higher_is_better=False,
           digits=4),
    Metric("grad_norm", "gradient norm (early phase mean)", "pretrain", ("diagnostics", "grad_norm_mean"),
           higher_is_better=False, digits=3),
    Metric("model_distance", "distance from init (end of early phase)", "pretrain",
           ("diagnostics", "model_distance_last")),
    Metric("top1", "top-1", "cls_finetune", ("final", "top1"), headline=True),
    Metric("top5", "top-5", "cls_finetune", ("final", "top5")),
    Metric("mean_per_class", "mean per-class accuracy", "cls_finetune", ("final", "mean_per_class"), headline=True,
           headline_for=("fgvc_aircraft", "pets", "caltech101", "flowers102")),
    Metric("mAP", "11-point mAP", "cls_finetune", ("final", "mAP"), headline=True, headline_for=("voc2007",)),
    _det("box_AP", "box AP", "coco/bbox_mAP", headline=True),
    _det("box_AP50", "box AP50", "coco/bbox_mAP_50"),
    _det("box_AP75", "box AP75", "coco/bbox_mAP_75"),
    _det("mask_AP", "mask AP", "coco/segm_mAP", headline=True),
    _det("mask_AP50", "mask AP50", "coco/segm_mAP_50"),
    _det("mask_AP75", "mask AP75", "coco/segm_mAP_75"),
    Metric("mIoU", "mIoU", "mmseg", ("metrics", "mIoU"), headline=True),
    Metric("mAcc", "mAcc", "mmseg", ("metrics", "mAcc")),
    Metric("aAcc", "aAcc", "mmseg", ("metrics", "aAcc")),
]


def metrics_of(kind: str) -> List[Metric]:
    return [m for m in METRICS if m.kind == kind]


def headline_metrics(kind: str, dataset: Optional[str] = None) -> List[Metric]:
    """What compare shows by default for runs of ``kind`` on ``dataset``."""
    headline = [m for m in METRICS if m.kind == kind and m.headline]
    own = [m for m in headline if dataset in m.headline_for]
    return own or [m for m in headline if not m.headline_for]


def metric_by_id(kind: str, metric_id: str) -> Optional[Metric]:
    return next((m for m in METRICS if m.kind == kind and m.id == metric_id), None)


def finite_number(value) -> Optional[float]:
    """``value`` as a float when it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def extract_metrics(kind: str, metrics_json: dict) -> Dict[str, float]:
    """{metric id: value in points} of the metrics this kind of run reports; absent or
    non-finite values are left out (an evaluator that returned nothing gives {})."""
    def at(path: Tuple[str, ...]) -> Optional[float]:
        node = metrics_json
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return finite_number(node)

    out = {}
    for m in metrics_of(kind):
        value = at(m.path)
        if value is not None and m.minus:
            other = at(m.minus)
            value = None if other is None else value - other
        if value is not None:
            out[m.id] = value * m.scale
    return out

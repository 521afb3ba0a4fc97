"""The test-split metrics of a classification-transfer run, each dataset's own
among them (Kornblith et al., 2019): top-1 and top-5, mean per-class accuracy
and, for the multi-label VOC 2007, the devkit's 11-point mAP. Which one a
dataset reports as its number is a rule of ``records.metrics``; every run
records all that apply, so compare can show any of them.

The definitions and where they come from:

* **mean per-class accuracy**: the mean over the test split's classes of the
  share of each class's images predicted right. That is scikit-learn's
  ``balanced_accuracy_score`` (mean recall per class, ``adjusted=False``).
* **11-point mAP** (VOC 2007, ``VOCevalcls`` of the devkit): per class, rank the
  images by score; precision and recall at every rank; AP = mean over
  t = 0, 0.1, ..., 1 of the highest precision at a recall >= t (0 where none);
  images marked difficult for the class (target -1) are neither a hit nor a
  miss. scikit-learn's ``average_precision_score`` is *not* this (it sums
  precision steps, uninterpolated), so only its ``precision_recall_curve`` is
  used, without the (recall 0, precision 1) point it appends, which the devkit
  does not have. Tied scores form one threshold there (the devkit's order
  among ties is whatever its sort gives).
* **top-1** of a multi-label set: the share of images whose highest-scoring
  class is one of their labels.

All in percent. Under DDP every rank gathers every rank's logits, so the
numbers are the whole split's.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, precision_recall_curve

from training import distributed as D

__all__ = ["mean_per_class_accuracy", "voc07_average_precision", "voc07_map", "MaskedBCEWithLogits",
           "single_label_metrics", "multilabel_metrics", "evaluate_transfer"]

VOC07_RECALLS = np.linspace(0.0, 1.0, 11)


def mean_per_class_accuracy(labels, predictions) -> float:
    """Mean over the classes present in ``labels`` of their accuracy, in %."""
    return 100.0 * float(balanced_accuracy_score(np.asarray(labels), np.asarray(predictions)))


def voc07_average_precision(targets, scores) -> float:
    """11-point interpolated AP (%) of one class; ``targets`` in {1, 0, -1 difficult}.
    NaN when the class has no positive image."""
    targets, scores = np.asarray(targets), np.asarray(scores, dtype=np.float64)
    keep = targets >= 0
    positive = targets[keep] > 0
    if not positive.any():
        return math.nan
    precision, recall, _ = precision_recall_curve(positive, scores[keep])
    precision, recall = precision[:-1], recall[:-1]  # drop the appended (recall 0, precision 1) end point
    return 100.0 * float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                                  for t in VOC07_RECALLS]))


def voc07_map(targets, scores) -> float:
    """Mean over classes (columns) of ``voc07_average_precision``, classes without a positive left out."""
    targets, scores = np.asarray(targets), np.asarray(scores)
    aps = [voc07_average_precision(targets[:, k], scores[:, k]) for k in range(targets.shape[1])]
    aps = [a for a in aps if not math.isnan(a)]
    return float(np.mean(aps)) if aps else math.nan


class MaskedBCEWithLogits(nn.Module):
    """Multi-label loss: binary cross-entropy per class on sigmoid outputs, mean over
    the entries whose target is not -1 (difficult-only: ignored, as by the metric)."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(logits.dtype)
        mask = (targets >= 0).to(logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0), weight=mask, reduction="sum")
        return loss / mask.sum().clamp(min=1)


def single_label_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    logits, labels = logits.float(), labels.long()
    n, num_classes = logits.shape
    k = min(5, num_classes)
    topk = logits.topk(k, dim=1).indices
    hit = topk.eq(labels[:, None])
    out = {"top1": 100.0 * hit[:, 0].float().mean().item(),
           "loss": F.cross_entropy(logits, labels).item(), "n": n,
           "mean_per_class": mean_per_class_accuracy(labels.numpy(), topk[:, 0].numpy())}
    if num_classes > 5:
        out["top5"] = 100.0 * hit.any(dim=1).float().mean().item()
    return out


def multilabel_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    logits, targets = logits.float(), targets.float()
    best = logits.argmax(dim=1)
    return {"top1": 100.0 * targets.gather(1, best[:, None]).eq(1).float().mean().item(),
            "loss": MaskedBCEWithLogits()(logits, targets).item(), "n": len(targets),
            "mAP": voc07_map(targets.numpy(), logits.numpy())}


def _gather(t: torch.Tensor) -> torch.Tensor:
    if D.world_size() == 1:
        return t
    parts = [None] * D.world_size()
    dist.all_gather_object(parts, t)
    return torch.cat(parts)


@torch.no_grad()
def predict(model: nn.Module, loader, device: torch.device,
            amp_dtype: Optional[torch.dtype] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(logits, targets) of every sample of ``loader``, on the CPU, over all ranks."""
    model.eval()
    logits, targets = [], []
    for samples, target in loader:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            out = model(samples.to(device))
        logits.append(out.float().cpu())
        targets.append(target.cpu())
    return _gather(torch.cat(logits)), _gather(torch.cat(targets))


def evaluate_transfer(model: nn.Module, loader, device: torch.device, amp_dtype: Optional[torch.dtype] = None,
                      multilabel: bool = False) -> dict:
    """The split's metrics (see the module docstring); ``n`` images."""
    logits, targets = predict(model, loader, device, amp_dtype)
    return (multilabel_metrics if multilabel else single_label_metrics)(logits, targets)

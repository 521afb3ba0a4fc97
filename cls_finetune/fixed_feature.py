"""The fixed-feature protocol of Kornblith, Shlens and Le, *Do Better ImageNet
Models Transfer Better?* (CVPR 2019), as the recipe ``fixed_feature``
(``--fixed_feature``; ``cls_configs/_base_/fixed_feature.yaml``):

1. the frozen backbone's penultimate features (timm's pre-logits) of every
   training and test image, computed once, without augmentation, in eval mode
   (``probe.extract_features``: on the GPU when there is one);
2. a validation split: the dataset's official val split where it has one
   (Flowers-102, DTD, FGVC Aircraft, VOC 2007), else ``--val_fraction`` (10%)
   of the training split, stratified by class and drawn with ``--seed``;
3. each feature standardised to mean 0 and std 1 over the fitting set
   (scikit-learn's ``StandardScaler``; ``--standardize false`` skips it): our
   documented choice, so that one penalty grid fits every backbone's scale;
4. L2-regularised multinomial logistic regression, scikit-learn's
   ``LogisticRegression(solver="lbfgs")`` (VOC 2007: one binary regression per
   class, difficult-only images left out of that class), for every penalty of
   ``--l2_grid``: the objective is mean cross-entropy + lambda/2 |W|^2, i.e.
   scikit-learn's ``C = 1 / (lambda * n)``, so lambda means the same on train and
   on train + val. The grid is walked from the largest penalty down, each fit
   starting from the previous solution (the problem is strictly convex: the
   start changes the path, not the optimum). The penalty with the best
   validation score wins (the dataset's own metric, ``records.metrics``; ties:
   the larger penalty);
5. refit with that penalty on train + val (standardised anew), evaluated on the
   test split. The fitted scaler and regression are folded into the model's
   linear head, so ``weights.pth`` is a classifier like any other run's, and the
   test metrics come from the same code as every other run's.

Feature extraction is shared by the processes (each its share of the images,
gathered on every process); the regression runs on the first process only, on the CPU cores (scikit-learn's
L-BFGS on numpy's threaded BLAS). ``metrics.json`` adds ``fixed_feature``:
the grid, the validation score of each penalty, the chosen one, the split
sizes and the seconds spent on features and on the regression.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Subset

import records
from training import distributed as D

from .evaluation import mean_per_class_accuracy, multilabel_metrics, single_label_metrics, voc07_map
from .main import FinetuneRun, classifier
from .probe import extract_features

__all__ = ["FixedFeatureRun", "LinearProtocol", "all_features", "validation_split", "search_penalty", "fit_head",
           "scorer_for"]


def scorer_for(dataset: str, multilabel: bool) -> Tuple[str, Callable]:
    """(metric id, score(targets, logits)) that chooses the penalty: the dataset's
    headline metric (``records.metrics``)."""
    if multilabel:
        return "mAP", lambda y, logits: voc07_map(y, logits)
    metric = records.headline_metrics("cls_finetune", dataset)[0].id
    if metric == "mean_per_class":
        return metric, lambda y, logits: mean_per_class_accuracy(y, logits.argmax(1))
    return "top1", lambda y, logits: 100.0 * float(np.mean(logits.argmax(1) == y))


def validation_split(labels: np.ndarray, val_indices: Optional[Sequence[int]], fraction: float, seed: int,
                     stratify: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(fit positions, validation positions) in the training split."""
    n = len(labels)
    if val_indices is not None:
        val = np.asarray(list(val_indices), dtype=np.int64)
        return np.setdiff1d(np.arange(n), val), val
    positions = np.arange(n)
    try:
        fit, val = train_test_split(positions, test_size=fraction, random_state=seed,
                                    stratify=labels if stratify else None)
    except ValueError:  # a class with a single image cannot be stratified: a plain random draw
        fit, val = train_test_split(positions, test_size=fraction, random_state=seed)
    return np.sort(fit), np.sort(val)


@dataclass
class LinearProtocol:
    """Standardisation + L2 logistic regression on fixed features, for one penalty grid."""
    num_classes: int
    multilabel: bool = False
    standardize: bool = True
    max_iter: int = 1000
    models: List[LogisticRegression] = field(default_factory=list)
    scaler: Optional[StandardScaler] = None
    classes: List[np.ndarray] = field(default_factory=list)

    def _c(self, l2: float, n: int) -> float:
        return 1.0 / (l2 * n)

    def start(self, x: np.ndarray) -> np.ndarray:
        self.scaler = StandardScaler(with_mean=self.standardize, with_std=self.standardize).fit(x)
        self.models = []
        return self.scaler.transform(x)

    def fit(self, x: np.ndarray, y: np.ndarray, l2: float) -> None:
        """Fit (warm-started from the previous fit of this protocol) on ``start``-ed ``x``."""
        columns = range(y.shape[1]) if self.multilabel else [None]
        if not self.models:
            self.models = [LogisticRegression(solver="lbfgs", max_iter=self.max_iter, warm_start=True)
                           for _ in columns]
        self.classes = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # weak penalties on separable data
            for model, k in zip(self.models, columns):
                if k is None:
                    xs, ys = x, y
                else:
                    keep = y[:, k] >= 0
                    xs, ys = x[keep], (y[keep, k] > 0).astype(np.int64)
                model.set_params(C=self._c(l2, len(xs)))
                if len(np.unique(ys)) < 2:  # a class with no positive (or no negative) image: constant
                    model.coef_, model.intercept_ = np.zeros((1, x.shape[1])), np.array([-20.0 if ys[0] == 0
                                                                                          else 20.0])
                    model.classes_ = np.array([0, 1])
                else:
                    model.fit(xs, ys)
                self.classes.append(model.classes_)

    def logits(self, x_raw: np.ndarray) -> np.ndarray:
        w, b = self.head()
        return x_raw @ w.T + b

    def head(self) -> Tuple[np.ndarray, np.ndarray]:
        """(weight [classes, dim], bias [classes]) on the *raw* features: the scaler
        folded in; softmax (or per-class sigmoid) of them gives scikit-learn's probabilities."""
        if self.multilabel:
            w = np.concatenate([m.coef_ for m in self.models])
            b = np.concatenate([m.intercept_ for m in self.models])
        else:
            m = self.models[0]
            w = np.zeros((self.num_classes, m.coef_.shape[1]))
            b = np.full(self.num_classes, -1e4)  # a class absent from the fitting set is never predicted
            if m.coef_.shape[0] == 1:  # two classes: scikit-learn keeps one row; softmax of -z/2, z/2 = sigmoid z
                coef, intercept = np.concatenate([-m.coef_ / 2, m.coef_ / 2]), np.array([-1, 1]) * m.intercept_ / 2
            else:
                coef, intercept = m.coef_, m.intercept_
            w[m.classes_], b[m.classes_] = coef, intercept
        scale = self.scaler.scale_ if self.scaler.scale_ is not None else np.ones(w.shape[1])
        mean = self.scaler.mean_ if self.scaler.mean_ is not None else np.zeros(w.shape[1])
        w_raw = w / scale
        return w_raw, b - w_raw @ mean


def search_penalty(x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                   grid: Sequence[float], protocol: LinearProtocol,
                   score: Callable) -> Tuple[float, Dict[float, float]]:
    """(chosen penalty, {penalty: validation score}): largest penalty first, warm starts."""
    xs = protocol.start(x_fit)
    scores: Dict[float, float] = {}
    for l2 in sorted(set(grid), reverse=True):
        protocol.fit(xs, y_fit, l2)
        scores[l2] = score(y_val, protocol.logits(x_val))
    best = max(scores.values())
    return max(l2 for l2, s in scores.items() if s == best), scores


def fit_head(x: np.ndarray, y: np.ndarray, l2: float, protocol: LinearProtocol) -> Tuple[np.ndarray, np.ndarray]:
    """The head (on raw features) refit with penalty ``l2`` on all of ``x``."""
    protocol.fit(protocol.start(x), y, l2)
    return protocol.head()


def all_features(model, dataset, batch_size: int, num_workers: int, device, amp_dtype=None):
    """(features, targets) of every image of ``dataset`` in order, each process
    computing those at its positions rank, rank + world, ... (one GPU each)."""
    world, rank = D.world_size(), D.rank()
    if world == 1:
        return extract_features(model, dataset, batch_size, num_workers, device, amp_dtype)
    mine = extract_features(model, Subset(dataset, range(rank, len(dataset), world)), batch_size, num_workers,
                            device, amp_dtype)
    parts = [None] * world
    dist.all_gather_object(parts, tuple(t.cpu() for t in mine))
    feats = torch.empty((len(dataset),) + parts[0][0].shape[1:], dtype=parts[0][0].dtype)
    targets = torch.empty((len(dataset),) + parts[0][1].shape[1:], dtype=parts[0][1].dtype)
    for r, (f, y) in enumerate(parts):
        feats[r::world], targets[r::world] = f, y
    return feats.to(device), targets.to(device)


class FixedFeatureRun(FinetuneRun):
    """A classification-transfer run whose 'training' is the fixed-feature protocol."""

    @property
    def cached(self) -> bool:
        return True

    @property
    def mode(self) -> str:
        return "fixed_feature"

    def train(self, ctx) -> dict:
        args, splits, t0 = self.args, self.splits, time.time()
        train_x, train_y = all_features(ctx.model, splits.train, args.batch_size, args.num_workers, ctx.device,
                                        ctx.amp_dtype)
        test_x, test_y = all_features(ctx.model, splits.test, args.batch_size, args.num_workers, ctx.device,
                                      ctx.amp_dtype)
        feature_seconds = time.time() - t0
        if not D.is_main():  # the regression runs once; only the first process writes the run's files
            return {"val": {"top1": float("nan")}, "ema_val": None, "train_loss": float("nan"),
                    "wall_time_s": time.time() - t0}
        t1 = time.time()
        x = train_x.double().cpu().numpy()
        y = train_y.cpu().numpy()
        fit_pos, val_pos = validation_split(y if not splits.multilabel else np.zeros(len(y)), splits.val_indices,
                                            args.val_fraction, args.seed, stratify=not splits.multilabel)
        metric, score = scorer_for(args.dataset, splits.multilabel)
        protocol = LinearProtocol(len(splits.classes), splits.multilabel, args.standardize, args.lbfgs_max_iter)
        chosen, scores = search_penalty(x[fit_pos], y[fit_pos], x[val_pos], y[val_pos], args.l2_grid, protocol,
                                        score)
        w, b = fit_head(x, y, chosen, LinearProtocol(len(splits.classes), splits.multilabel, args.standardize,
                                                     args.lbfgs_max_iter))
        regression_seconds = time.time() - t1
        head = classifier(ctx.model)
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(w, dtype=head.weight.dtype))
            head.bias.copy_(torch.as_tensor(b, dtype=head.bias.dtype))
        self.search = {"grid": sorted(scores), "selected_by": metric, "val_scores": [scores[k] for k in sorted(scores)],
                       "l2": chosen, "fit_images": int(len(fit_pos)), "val_images": int(len(val_pos)),
                       "val_split": "official val" if splits.val_indices is not None
                       else f"{args.val_fraction:g} of train (seed {args.seed})",
                       "standardize": bool(args.standardize), "feature_seconds": feature_seconds,
                       "regression_seconds": regression_seconds}
        metrics = multilabel_metrics if splits.multilabel else single_label_metrics
        with torch.no_grad():  # the test split through the model's own head, as every run's
            val = metrics(head(test_x.to(head.weight.dtype)).cpu(), test_y.cpu())
            train_loss = metrics(head(train_x.to(head.weight.dtype)).cpu(), train_y.cpu())["loss"]
        ctx.best_top1 = val["top1"]
        return {"val": val, "ema_val": None, "train_loss": train_loss, "wall_time_s": time.time() - t0}

    def summary(self, ctx) -> dict:
        return {**super().summary(ctx), "fixed_feature": getattr(self, "search", None)}

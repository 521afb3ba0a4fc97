"""Curves of a run, read from its logs: training loss, validation metric, drop rates
and the gradient diagnostics. Each is a list of (x, y) points with the x unit named.

Training runs (pretrain, cls_finetune): ``log.jsonl`` per epoch, ``log_iter.jsonl``
per update, ``diagnostics.jsonl``. det/seg runs: ``metrics_val.jsonl`` and
mmengine's ``<timestamp>/vis_data/scalars.json`` (every timestamp dir of a resumed
run, later ones overriding the same iteration).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from common.files import read_jsonl
from common.names import DIAGNOSTICS, EPOCH_LOG, ITER_LOG, MM_SCALARS, VAL_METRICS

from .metrics import metric_by_id
from .runs import RunRecord

__all__ = ["Curve", "train_loss_curve", "val_curve", "drop_rate_curves", "diagnostics_curves", "DIAGNOSTIC_MEASURES"]

Points = List[Tuple[float, float]]
DIAGNOSTIC_MEASURES = [("gde", "gradient direction error"), ("gdv", "gradient direction variance"),
                       ("grad_norm", "gradient norm"), ("model_distance", "distance to init ||W - W0||")]


class Curve:
    def __init__(self, points: Points, x_unit: str):
        self.points, self.x_unit = points, x_unit

    def __bool__(self) -> bool:
        return bool(self.points)


def _finite(v) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _points(rows, x_key: str, y_key: str, x_scale: float = 1.0, x_shift: float = 0.0) -> Points:
    out = {}
    for r in rows:
        x, y = _finite(r.get(x_key)), _finite(r.get(y_key))
        if x is not None and y is not None:
            out[x * x_scale + x_shift] = y  # a later record of the same x (a resumed run) wins
    return sorted(out.items())


def _epoch_points(rec: RunRecord, y_key: str) -> Points:
    # log.jsonl numbers an epoch from 0 and measures at its end: x = epochs done, as for the rates
    return _points(read_jsonl(rec.run_dir / EPOCH_LOG), "epoch", y_key, x_shift=1.0)


def _mm_scalars(run_dir: Path) -> List[dict]:
    rows = []
    for path in sorted(run_dir.glob(f"*/{MM_SCALARS}")):
        rows.extend(read_jsonl(path))
    return rows


def train_loss_curve(rec: RunRecord) -> Curve:
    if rec.kind in ("pretrain", "cls_finetune"):
        return Curve(_epoch_points(rec, "train_loss"), "epoch")
    rows = [r for r in _mm_scalars(rec.run_dir) if "loss" in r]
    return Curve(_points(rows, "iter" if any("iter" in r for r in rows) else "step", "loss"), "iteration")


def val_curve(rec: RunRecord, metric_id: str) -> Curve:
    """The validation history of one of the task's metrics, in points (the final
    metrics of training runs are measured on the same split)."""
    metric = metric_by_id(rec.kind, metric_id)
    if metric is None:
        return Curve([], "")
    if rec.kind in ("pretrain", "cls_finetune"):
        key = {"top1": "val_top1", "top5": "val_top5", "train_loss": "train_loss"}[metric_id]
        return Curve(_epoch_points(rec, key), "epoch")
    rows = [{"x": r.get("epoch") if rec.kind == "mmdet" else r.get("iter"),
             "y": (r.get("metrics") or {}).get(metric.path[-1])} for r in read_jsonl(rec.run_dir / VAL_METRICS)]
    points = [(x, y * metric.scale) for x, y in _points(rows, "x", "y")]
    return Curve(points, "epoch" if rec.kind == "mmdet" else "iteration")


def drop_rate_curves(rec: RunRecord) -> Dict[str, Curve]:
    """{'dropout': ..., 'drop_path': ...} as the run logged them (read back off the model)."""
    if rec.kind in ("pretrain", "cls_finetune"):
        rows = read_jsonl(rec.run_dir / ITER_LOG)
        per_epoch = rec.info.get("iters_per_epoch")
        scale = 1.0 / per_epoch if isinstance(per_epoch, int) and per_epoch > 0 else 1.0
        unit = "epoch" if scale != 1.0 else "update"
        return {k: Curve(_points(rows, "step", k, scale), unit) for k in ("dropout", "drop_path")}
    rows = _mm_scalars(rec.run_dir)
    return {k: Curve(_points([r for r in rows if k in r], "iter", k), "iteration") for k in ("dropout", "drop_path")}


def diagnostics_curves(rec: RunRecord) -> Dict[str, Curve]:
    """The paper's gradient diagnostics of a pretraining run trained with --diag_every."""
    rows = read_jsonl(rec.run_dir / DIAGNOSTICS)
    return {k: Curve(_points(rows, "epoch", k), "epoch") for k, _ in DIAGNOSTIC_MEASURES}

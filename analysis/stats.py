"""The statistics of a comparison, all from scipy: mean and sample std of a method's
runs, and the paired differences method - baseline (mean, 95% CI, paired t-test, wins)."""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import stats

__all__ = ["BOOTSTRAP_RESAMPLES", "PairedStats", "describe", "paired_stats", "method_text"]

BOOTSTRAP_RESAMPLES = 9999


@dataclass
class PairedStats:
    """Method - baseline over the pairs: the mean difference, its 95% CI (from 2 pairs),
    the two-sided paired t-test p-value (from 3 pairs) and the fraction of pairs won."""
    n_pairs: int = 0
    delta: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    p: Optional[float] = None
    wins: Optional[float] = None


def _bootstrap_kwargs() -> dict:
    # scipy >= 1.15 takes rng=, older versions random_state=.
    name = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    return {name: np.random.default_rng(0)}


def describe(values: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation (n - 1; None below 2 values)."""
    if not values:
        return None, None
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def paired_stats(pairs: Sequence[Tuple[float, float]], ci: str = "t", higher_is_better: bool = True) -> PairedStats:
    """Statistics of the paired differences method - baseline; the CI is a Student
    t-interval (``ci="t"``) or a percentile bootstrap with a fixed seed (``"bootstrap"``)."""
    out = PairedStats(n_pairs=len(pairs))
    if not pairs:
        return out
    method = np.array([p[0] for p in pairs], dtype=float)
    base = np.array([p[1] for p in pairs], dtype=float)
    diff = method - base
    out.delta = float(diff.mean())
    out.wins = float(np.mean(diff > 0 if higher_is_better else diff < 0))
    constant = bool(np.ptp(diff) == 0)
    if len(diff) >= 2:
        if constant:  # no spread: the interval is the point (scipy would return nan)
            out.ci_low = out.ci_high = out.delta
        elif ci == "bootstrap":
            res = stats.bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=BOOTSTRAP_RESAMPLES,
                                  method="percentile", **_bootstrap_kwargs())
            out.ci_low, out.ci_high = map(float, (res.confidence_interval.low, res.confidence_interval.high))
        else:
            low, high = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=stats.sem(diff))
            out.ci_low, out.ci_high = float(low), float(high)
    if len(diff) >= 3 and not constant:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.p = float(stats.ttest_rel(method, base).pvalue)
    return out


def method_text(ci: str) -> list:
    """How the numbers are made, for the console and the reports."""
    ci_text = ("Student t-interval of the mean paired difference (scipy.stats.t)" if ci == "t" else
               f"percentile bootstrap of the mean paired difference (scipy.stats.bootstrap, "
               f"{BOOTSTRAP_RESAMPLES} resamples, seed 0)")
    return [
        "Pairs: a method run and a baseline run of the same cell with the same pretraining seed and, for "
        "transfer runs, the same own seed (runs without a recorded seed pair in run-dir order).",
        f"Δ = mean of (method - baseline) over pairs; 95% CI: {ci_text}, from 2 pairs; "
        "p: two-sided paired t-test (scipy.stats.ttest_rel), from 3 pairs; wins: pairs where the method is "
        "better (lower for losses).",
        "Values in points (COCO AP x 100, mIoU/mAcc/aAcc and top-1/top-5 in %); mean ± std over the method's "
        "finished runs (std with n-1). Unfinished, no-metrics and stale runs are left out of every number.",
    ]

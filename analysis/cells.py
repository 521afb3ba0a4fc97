"""Cells: one pretraining method of one group of comparable runs, for one metric, with
its numbers and the paired statistics against the group's baseline."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import records
from records import Group, Metric, RunRecord

from .stats import PairedStats, describe, paired_stats

__all__ = ["Cell", "GroupRuns", "group_runs", "build_cells", "pair_runs", "cell_baseline", "grouped",
           "summary_counts"]


@dataclass
class Cell:
    """One method of one group, for one metric."""
    group: Group
    recipe: str                  # the group's recipe as shown (label; fingerprint where two share it)
    method: str
    metric: Metric
    is_baseline: bool
    values: List[float]          # the method's finished runs that report the metric
    baseline_values: List[float]
    n_runs: int
    status_counts: Dict[str, int]
    stats: Optional[PairedStats] = None   # None for the baseline and where no comparison can be made
    expected: Optional[float] = None      # pretraining top-1: the paper's number for the preset
    expected_delta: Optional[float] = None
    notes: List[str] = field(default_factory=list)
    has_baseline: bool = True

    @property
    def kind(self) -> str:
        return self.group.kind

    @property
    def task(self) -> str:
        return records.TASK_NAMES.get(self.kind, self.kind)

    @property
    def dataset(self) -> str:
        return self.group.dataset

    @property
    def arch(self) -> str:
        return self.group.arch

    @property
    def finetune_method(self) -> str:
        return self.group.finetune_method

    @property
    def mean_std(self) -> Tuple[Optional[float], Optional[float]]:
        return describe(self.values)

    @property
    def title(self) -> str:
        parts = [self.task, self.dataset, self.recipe, self.arch]
        if self.finetune_method:
            parts.append(f"fine-tuning: {self.finetune_method}")
        return " · ".join(parts)


@dataclass
class GroupRuns:
    """The runs of one group, by pretraining method, the baseline first."""
    group: Group
    by_method: Dict[str, List[RunRecord]]
    baseline: str

    @property
    def methods(self) -> List[str]:
        return sorted(self.by_method, key=lambda m: (m != self.baseline, m))


def cell_baseline(methods, baselines: List[str]) -> str:
    """The first of ``baselines`` a group has (e.g. late s.d. against standard s.d. where
    a group has no no-dropout run)."""
    return next((b for b in baselines if b in methods), baselines[0])


def group_runs(runs: Sequence[RunRecord], baselines: List[str]) -> List[GroupRuns]:
    """The groups of ``runs`` (tasks in order, then by name)."""
    groups: Dict[Group, Dict[str, List[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.kind in records.KINDS:
            groups[r.group][r.method].append(r)
    return [GroupRuns(key, dict(groups[key]), cell_baseline(groups[key], baselines))
            for key in sorted(groups, key=lambda g: g.sort_key)]


def pair_runs(method_runs: List[RunRecord], baseline_runs: List[RunRecord],
              metric_id: str) -> List[Tuple[float, float]]:
    """(method value, baseline value) of runs sharing a pair key; several runs under one
    key (e.g. det/seg runs without a configured seed) pair in run-dir order."""
    def by_key(runs):
        table = defaultdict(list)
        for r in sorted(runs, key=lambda r: str(r.run_dir)):
            if r.usable and metric_id in r.metrics:
                table[r.pair_key].append(r.metrics[metric_id])
        return table
    ours, theirs = by_key(method_runs), by_key(baseline_runs)
    pairs = []
    for key in sorted(set(ours) & set(theirs), key=repr):
        pairs.extend(zip(ours[key], theirs[key]))
    return pairs


def _recipe_display(runs: List[RunRecord]) -> Dict[Group, str]:
    """A readable recipe label per group; the fingerprint only where two recipes share a label."""
    ids_per_label = defaultdict(set)
    for r in runs:
        ids_per_label[(r.kind, r.dataset, r.recipe)].add(r.recipe_id)
    out = {}
    for r in runs:
        label = r.recipe if len(ids_per_label[(r.kind, r.dataset, r.recipe)]) == 1 else r.recipe_id
        if r.is_transfer and r.pretrain_recipe:
            label = f"{label}; {r.pretrain_recipe}"
        out[r.group] = label
    return out


def _values(runs: List[RunRecord], metric: Metric) -> List[float]:
    return [r.metrics[metric.id] for r in runs if r.usable and metric.id in r.metrics]


def _expected(runs: List[RunRecord], metric: Metric) -> Optional[float]:
    if metric.kind != "pretrain" or metric.id != "top1":
        return None
    values = [r.paper_top1 for r in runs if r.paper_top1 is not None]
    return float(np.mean(values)) if values else None


def build_cells(runs: List[RunRecord], metrics: Callable[[str, str], List[Metric]], baselines: List[str],
                ci: str) -> List[Cell]:
    groups = group_runs(runs, baselines)
    recipe_label = _recipe_display([r for g in groups for rs in g.by_method.values() for r in rs])
    cells = []
    for g in groups:
        base_runs = g.by_method.get(g.baseline, [])
        for metric in metrics(g.group.kind, g.group.dataset):
            base_expected = _expected(base_runs, metric)
            for method in g.methods:
                method_runs = g.by_method[method]
                cell = Cell(group=g.group, recipe=recipe_label[g.group], method=method, metric=metric,
                            is_baseline=method == g.baseline, values=_values(method_runs, metric),
                            baseline_values=_values(base_runs, metric), n_runs=len(method_runs),
                            status_counts=dict(Counter(r.status for r in method_runs)),
                            has_baseline=bool(base_runs), expected=_expected(method_runs, metric))
                if cell.expected is not None and base_expected is not None and not cell.is_baseline:
                    cell.expected_delta = cell.expected - base_expected
                _fill_stats(cell, method_runs, base_runs, ci)
                cells.append(cell)
    return cells


def _fill_stats(cell: Cell, method_runs, base_runs, ci: str) -> None:
    for status in (records.UNFINISHED, records.NO_METRICS, records.STALE):
        if cell.status_counts.get(status):
            cell.notes.append(f"{cell.status_counts[status]} {status}")
    finished_without_metric = sum(1 for r in method_runs if r.usable and cell.metric.id not in r.metrics)
    if finished_without_metric:
        cell.notes.append(f"{finished_without_metric} without {cell.metric.id}")
    if cell.is_baseline:
        return
    if not cell.has_baseline:
        cell.notes.insert(0, "no baseline")
        return
    if not cell.baseline_values:
        cell.notes.insert(0, "baseline has no finished run")
        return
    pairs = pair_runs(method_runs, base_runs, cell.metric.id)
    cell.stats = paired_stats(pairs, ci, cell.metric.higher_is_better)
    n, nb, n_pairs = len(cell.values), len(cell.baseline_values), len(pairs)
    if n != nb:
        cell.notes.append(f"uneven seeds: {n} vs {nb} baseline, Δ over {n_pairs} pair{'s' * (n_pairs != 1)}")
    if cell.values and not pairs:
        cell.notes.append("no pairs: no baseline run with the same seeds")
    elif n_pairs == 1:
        cell.notes.append("1 pair: no CI")
    elif n_pairs == 2:
        cell.notes.append("2 pairs: no p-value")
    elif n_pairs >= 3 and cell.stats.p is None:
        cell.notes.append("identical differences: no p-value")


def grouped(cells: List[Cell]) -> List[Tuple[str, List[Cell]]]:
    """Consecutive cells under one title (a table each)."""
    out: List[Tuple[str, List[Cell]]] = []
    for cell in cells:
        if not out or out[-1][0] != cell.title:
            out.append((cell.title, []))
        out[-1][1].append(cell)
    return out


def summary_counts(runs: List[RunRecord], cells: List[Cell]) -> Dict[str, int]:
    status = Counter(r.status for r in runs)
    compared = [c for c in cells if not c.is_baseline]
    return {
        "runs": len(runs), "finished": status[records.FINISHED], "unfinished": status[records.UNFINISHED],
        "no metrics": status[records.NO_METRICS], "stale": status[records.STALE],
        "unreadable": status[records.UNREADABLE], "cells": len(cells),
        "cells without baseline": sum(1 for c in compared if not c.has_baseline or not c.baseline_values),
        "cells with uneven seeds": sum(1 for c in compared if c.has_baseline and c.baseline_values
                                       and len(c.values) != len(c.baseline_values)),
        "cells with a CI": sum(1 for c in compared if c.stats is not None and c.stats.ci_low is not None),
    }

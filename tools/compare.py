"""Does pretraining with early/late dropout (or stochastic depth) beat the no-dropout
baseline? Reads every run under the given roots and answers per task, with paired
seeds and 95% confidence intervals.

    python tools/compare.py output/                          # everything the suite wrote
    python tools/compare.py output/pretrain output/cls --out output/compare
    python tools/compare.py suites/paper.yaml                # a suite file: its output_root
    python tools/compare.py output/ --metric all --ci bootstrap

What it does
  1. finds every run dir under ROOT (a dir holding run.json: pretraining,
     classification, detection or segmentation runs of this suite);
  2. groups runs into cells: same task, dataset, recipe, fine-tuning drop schedule,
     architecture (and, for transfer runs, pretraining length), one cell per
     pretraining method;
  3. compares each method with the baseline of its cell (--baseline, default "no
     dropout"; with several, the first one the cell has), PAIRED: a method run and
     a baseline run form a pair when they share the pretraining seed and, for
     transfer runs, their own seed.

Columns
  n            finished runs (seeds) of the method in this cell
  mean ± std   over those runs (std with n-1)
  Δ [95% CI]   mean of the paired differences method - baseline, with its 95%
               confidence interval (t-interval by default; --ci bootstrap for a
               percentile bootstrap); needs 2 pairs for a CI
  p            two-sided paired t-test (scipy.stats.ttest_rel), from 3 pairs on
  wins         pairs where the method is better (higher; lower for train loss)
  expected     pretraining top-1: the paper's number for the preset (--paper_top1)
  notes        unfinished / no metrics / stale runs, missing baseline, uneven seeds

Metrics are in points (COCO AP x 100, mIoU, top-1 in %). Runs that did not finish,
whose evaluator returned nothing, or whose pretrained checkpoint changed after
they ran (stale) are counted in the notes and left out of the numbers.

Writes into --out: report.md (tables and plots), summary.md, summary.csv (one row
per cell and metric), runs.csv (one row per run, raw numbers), summary.tex
(booktabs), and PNGs: forest_<task>.png (Δ with CIs), curves_<cell>.png (training
loss, validation and drop rate, mean ± std over seeds), diagnostics_<cell>.png
(GDE/GDV/gradient norm/distance, when recorded).
"""
from __future__ import annotations

import argparse
import csv
import inspect
import re
import sys
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import stats
from tabulate import tabulate

import records
from backbones.errors import UserError, run_cli
from records import curves as record_curves

DEFAULT_BASELINE = "no dropout"
KIND_ORDER = {k: i for i, k in enumerate(records.KINDS)}
BOOTSTRAP_RESAMPLES = 9999


# ---- input -------------------------------------------------------------------------------------

def resolve_roots(roots: Sequence[str]) -> List[Path]:
    """Dirs to scan; a .yaml/.yml root is a suite file whose ``output_root`` (relative to
    the current directory) is scanned."""
    out = []
    for root in roots:
        path = Path(root)
        if path.suffix in (".yaml", ".yml"):
            path = _suite_output_root(path)
        if not path.exists():
            raise UserError(f"root {path} does not exist")
        if not path.is_dir():
            raise UserError(f"root {path} is not a directory (nor a suite .yaml file)")
        out.append(path)
    return out


def _suite_output_root(path: Path) -> Path:
    import yaml
    if not path.is_file():
        raise UserError(f"suite file {path} does not exist")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"suite file {path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("output_root"), str):
        raise UserError(f"suite file {path}: no 'output_root' key naming the dir its runs are written to")
    return Path(spec["output_root"])


def select_metrics(requested: Optional[List[str]]) -> Callable[[str, str], List[records.Metric]]:
    """(kind, dataset) -> metrics to compare: the headline metrics (a dataset's own where
    it has one, e.g. mean per-class accuracy for Pets), every metric ('all'), or the named ones."""
    if not requested:
        return records.headline_metrics
    if "all" in requested:
        return lambda kind, dataset=None: records.metrics_of(kind)
    known = sorted({m.id for m in records.METRIC_RULES})
    for name in requested:
        if name not in known:
            raise UserError(f"--metric {name}: unknown metric; known: all, {', '.join(known)}")
    return lambda kind, dataset=None: [m for m in records.metrics_of(kind) if m.id in requested]


# ---- statistics --------------------------------------------------------------------------------

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


def paired_stats(pairs: Sequence[Tuple[float, float]], ci: str = "t", higher_is_better: bool = True) -> dict:
    """Statistics of the paired differences method - baseline: their mean, a 95% CI
    (from 2 pairs: Student t-interval, or percentile bootstrap with a fixed seed), the
    two-sided paired t-test p-value (from 3 pairs) and the fraction of pairs won."""
    out = {"n_pairs": len(pairs), "delta": None, "ci_low": None, "ci_high": None, "p": None, "wins": None}
    if not pairs:
        return out
    method = np.array([p[0] for p in pairs], dtype=float)
    base = np.array([p[1] for p in pairs], dtype=float)
    diff = method - base
    out["delta"] = float(diff.mean())
    out["wins"] = float(np.mean(diff > 0 if higher_is_better else diff < 0))
    constant = bool(np.ptp(diff) == 0)
    if len(diff) >= 2:
        if constant:  # no spread: the interval is the point (scipy would return nan)
            out["ci_low"] = out["ci_high"] = out["delta"]
        elif ci == "bootstrap":
            res = stats.bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=BOOTSTRAP_RESAMPLES,
                                  method="percentile", **_bootstrap_kwargs())
            out["ci_low"], out["ci_high"] = map(float, (res.confidence_interval.low, res.confidence_interval.high))
        else:
            low, high = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=stats.sem(diff))
            out["ci_low"], out["ci_high"] = float(low), float(high)
    if len(diff) >= 3 and not constant:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["p"] = float(stats.ttest_rel(method, base).pvalue)
    return out


# ---- cells -------------------------------------------------------------------------------------

@dataclass
class Cell:
    """One method of one group, for one metric."""
    group: tuple
    kind: str
    dataset: str
    recipe: str
    finetune_method: str
    arch: str
    method: str
    metric: records.Metric
    is_baseline: bool
    values: List[float]
    baseline_values: List[float]
    n_runs: int
    status_counts: Dict[str, int]
    stats: dict = field(default_factory=dict)
    expected: Optional[float] = None
    expected_delta: Optional[float] = None
    notes: List[str] = field(default_factory=list)
    has_baseline: bool = True

    @property
    def task(self) -> str:
        return records.TASK_NAMES.get(self.kind, self.kind)

    @property
    def mean_std(self) -> Tuple[Optional[float], Optional[float]]:
        return describe(self.values)


def pair_runs(method_runs: List[records.RunRecord], baseline_runs: List[records.RunRecord],
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


def _recipe_display(runs: List[records.RunRecord]) -> Dict[tuple, str]:
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


def cell_baseline(methods, baselines: List[str]) -> str:
    """The first of ``baselines`` a group has (e.g. late s.d. against standard s.d. where
    a group has no no-dropout run)."""
    return next((b for b in baselines if b in methods), baselines[0])


def build_cells(runs: List[records.RunRecord], metrics: Callable[[str, str], List[records.Metric]],
                baselines: List[str], ci: str) -> List[Cell]:
    groups: Dict[tuple, List[records.RunRecord]] = defaultdict(list)
    for r in runs:
        if r.kind in records.KINDS:
            groups[r.group].append(r)
    recipe_label = _recipe_display([r for rs in groups.values() for r in rs])
    cells = []
    for key in sorted(groups, key=lambda g: (KIND_ORDER[g[0]],) + tuple(map(str, g[1:]))):
        group_runs = groups[key]
        by_method = defaultdict(list)
        for r in group_runs:
            by_method[r.method].append(r)
        baseline = cell_baseline(by_method, baselines)
        methods = sorted(by_method, key=lambda m: (m != baseline, m))
        base_runs = by_method.get(baseline, [])
        first = group_runs[0]
        for metric in metrics(first.kind, first.dataset):
            base_values = [r.metrics[metric.id] for r in base_runs if r.usable and metric.id in r.metrics]
            base_expected = _expected(base_runs, metric)
            for method in methods:
                method_runs = by_method[method]
                cell = Cell(group=key, kind=first.kind, dataset=first.dataset, recipe=recipe_label[key],
                            finetune_method=first.finetune_method or "", arch=first.arch, method=method,
                            metric=metric, is_baseline=method == baseline,
                            values=[r.metrics[metric.id] for r in method_runs
                                    if r.usable and metric.id in r.metrics],
                            baseline_values=base_values, n_runs=len(method_runs),
                            status_counts=dict(Counter(r.status for r in method_runs)),
                            has_baseline=bool(base_runs))
                cell.expected = _expected(method_runs, metric)
                if cell.expected is not None and base_expected is not None and not cell.is_baseline:
                    cell.expected_delta = cell.expected - base_expected
                _fill_stats(cell, method_runs, base_runs, ci)
                cells.append(cell)
    return cells


def _expected(runs: List[records.RunRecord], metric: records.Metric) -> Optional[float]:
    if metric.kind != "pretrain" or metric.id != "top1":
        return None
    values = [r.paper_top1 for r in runs if r.paper_top1 is not None]
    return float(np.mean(values)) if values else None


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
    elif n_pairs >= 3 and cell.stats["p"] is None:
        cell.notes.append("identical differences: no p-value")


# ---- formatting --------------------------------------------------------------------------------

def _digits(metric: records.Metric) -> int:
    return 3 if metric.id == "train_loss" else 2


def fmt_value(v: Optional[float], digits: int, signed: bool = False) -> str:
    if v is None:
        return ""
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def fmt_mean_std(cell: Cell) -> str:
    mean, std = cell.mean_std
    d = _digits(cell.metric)
    if mean is None:
        return "—"
    return fmt_value(mean, d) + (f" ± {std:.{d}f}" if std is not None else "")


def fmt_delta(cell: Cell) -> str:
    s, d = cell.stats, _digits(cell.metric)
    if cell.is_baseline:
        return "(baseline)"
    if not s or s.get("delta") is None:
        return "—"
    text = fmt_value(s["delta"], d, signed=True)
    if s["ci_low"] is not None:
        text += f" [{fmt_value(s['ci_low'], d, True)}, {fmt_value(s['ci_high'], d, True)}]"
    return text


def fmt_p(cell: Cell) -> str:
    p = cell.stats.get("p") if cell.stats else None
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_wins(cell: Cell) -> str:
    s = cell.stats
    if not s or s.get("wins") is None:
        return ""
    return f"{round(s['wins'] * s['n_pairs'])}/{s['n_pairs']}"


def fmt_expected(cell: Cell) -> str:
    if cell.expected is None:
        return ""
    return f"{cell.expected:.1f}" + (f" ({cell.expected_delta:+.1f})" if cell.expected_delta is not None else "")


ROW_HEADERS = ["method", "metric", "n", "mean ± std", "Δ vs baseline [95% CI]", "p", "wins", "expected", "notes"]


def cell_row(cell: Cell) -> List[str]:
    return [cell.method, cell.metric.label, str(len(cell.values)), fmt_mean_std(cell), fmt_delta(cell),
            fmt_p(cell), fmt_wins(cell), fmt_expected(cell), "; ".join(cell.notes)]


def group_title(cell: Cell) -> str:
    parts = [cell.task, cell.dataset, cell.recipe, cell.arch]
    if cell.finetune_method:
        parts.append(f"fine-tuning: {cell.finetune_method}")
    return " · ".join(parts)


def grouped(cells: List[Cell]) -> List[Tuple[str, List[Cell]]]:
    out: List[Tuple[str, List[Cell]]] = []
    for cell in cells:
        title = group_title(cell)
        if not out or out[-1][0] != title:
            out.append((title, []))
        out[-1][1].append(cell)
    return out


def method_text(ci: str) -> List[str]:
    ci_text = ("Student t-interval of the mean paired difference (scipy.stats.t)" if ci == "t" else
               f"percentile bootstrap of the mean paired difference (scipy.stats.bootstrap, "
               f"{BOOTSTRAP_RESAMPLES} resamples, seed 0)")
    return [
        "Pairs: a method run and a baseline run of the same cell with the same pretraining seed and, for "
        "transfer runs, the same own seed (runs without a recorded seed pair in run-dir order).",
        f"Δ = mean of (method - baseline) over pairs; 95% CI: {ci_text}, from 2 pairs; "
        "p: two-sided paired t-test (scipy.stats.ttest_rel), from 3 pairs; wins: pairs where the method is "
        "better (lower for train loss).",
        "Values in points (COCO AP x 100, mIoU/mAcc/aAcc and top-1/top-5 in %); mean ± std over the method's "
        "finished runs (std with n-1). Unfinished, no-metrics and stale runs are left out of every number.",
    ]


def summary_counts(runs: List[records.RunRecord], cells: List[Cell]) -> Dict[str, int]:
    status = Counter(r.status for r in runs)
    compared = [c for c in cells if not c.is_baseline]
    return {
        "runs": len(runs), "finished": status[records.FINISHED], "unfinished": status[records.UNFINISHED],
        "no metrics": status[records.NO_METRICS], "stale": status[records.STALE],
        "unreadable": status[records.UNREADABLE], "cells": len(cells),
        "cells without baseline": sum(1 for c in compared if not c.has_baseline or not c.baseline_values),
        "cells with uneven seeds": sum(1 for c in compared if c.has_baseline and c.baseline_values
                                       and len(c.values) != len(c.baseline_values)),
        "cells with a CI": sum(1 for c in compared if c.stats.get("ci_low") is not None),
    }


def summary_line(counts: Dict[str, int]) -> str:
    runs = (f"{counts['runs']} runs: {counts['finished']} finished, {counts['unfinished']} unfinished, "
            f"{counts['no metrics']} without metrics, {counts['stale']} stale, {counts['unreadable']} unreadable")
    cells = (f"{counts['cells']} cells (method x metric): {counts['cells without baseline']} without baseline, "
             f"{counts['cells with uneven seeds']} with uneven seeds, {counts['cells with a CI']} with a CI")
    return f"{runs}; {cells}"


# ---- outputs -----------------------------------------------------------------------------------

def baseline_text(baselines: List[str]) -> str:
    if len(baselines) == 1:
        return f"baseline: {baselines[0]!r}"
    return "baseline: the first of " + ", ".join(map(repr, baselines)) + " that the cell has"


def print_console(cells: List[Cell], counts: Dict[str, int], ci: str, baselines: List[str]) -> None:
    for title, group in grouped(cells):
        print(f"\n== {title}")
        print(tabulate([cell_row(c) for c in group], headers=ROW_HEADERS, tablefmt="simple", disable_numparse=True))
    print("\n" + baseline_text(baselines))
    for line in method_text(ci):
        print(line)
    print(summary_line(counts))


def problem_runs(runs: List[records.RunRecord]) -> List[records.RunRecord]:
    return [r for r in runs if r.status != records.FINISHED]


def markdown_tables(cells: List[Cell], runs: List[records.RunRecord], counts, ci: str, baselines: List[str]) -> str:
    lines = [f"{baseline_text(baselines).capitalize()}. {summary_line(counts)}.", ""]
    lines += [f"* {t}" for t in method_text(ci)]
    lines += ["* Columns: n = finished runs (seeds) of the method; mean ± std over them; Δ vs baseline with its 95% "
              "CI; p = paired t-test; wins = pairs where the method is better; expected = the paper's ImageNet "
              "top-1 for the preset (its Δ in brackets); notes = runs left out and why, missing baseline, "
              "uneven seeds."]
    for title, group in grouped(cells):
        lines += ["", f"### {title}", "",
                  tabulate([cell_row(c) for c in group], headers=ROW_HEADERS, tablefmt="github",
                           disable_numparse=True)]
    problems = problem_runs(runs)
    if problems:
        lines += ["", "### Runs left out", "", tabulate(
            [[str(r.run_dir), r.status, r.note] for r in problems], headers=["run", "status", "why"],
            tablefmt="github", disable_numparse=True)]
    return "\n".join(lines) + "\n"


def write_csvs(cells: List[Cell], runs: List[records.RunRecord], out: Path, ci: str) -> None:
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "dataset", "recipe", "finetune_method", "arch", "method", "is_baseline", "metric",
                    "higher_is_better", "n", "mean", "std", "n_baseline", "baseline_mean", "n_pairs", "delta",
                    "ci_low", "ci_high", "ci_method", "p_value", "wins", "expected", "expected_delta",
                    "unfinished", "no_metrics", "stale", "notes"])
        for c in cells:
            mean, std = c.mean_std
            s = c.stats or {}
            w.writerow([c.task, c.dataset, c.recipe, c.finetune_method, c.arch, c.method, c.is_baseline,
                        c.metric.id, c.metric.higher_is_better, len(c.values), _num(mean), _num(std),
                        len(c.baseline_values), _num(describe(c.baseline_values)[0]), s.get("n_pairs", ""),
                        _num(s.get("delta")), _num(s.get("ci_low")), _num(s.get("ci_high")),
                        ci if s.get("ci_low") is not None else "", _num(s.get("p")), _num(s.get("wins")),
                        _num(c.expected), _num(c.expected_delta), c.status_counts.get(records.UNFINISHED, 0),
                        c.status_counts.get(records.NO_METRICS, 0), c.status_counts.get(records.STALE, 0),
                        "; ".join(c.notes)])
    metric_ids = list(dict.fromkeys(m.id for m in records.METRIC_RULES))
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run_dir", "task", "dataset", "recipe", "finetune_method", "arch", "method", "pretrain_recipe",
                    "pretrain_seed", "pretrain_sha256", "seed", "status", "note", "paper_top1", *metric_ids])
        for r in runs:
            w.writerow([str(r.run_dir), r.task, r.dataset, r.recipe_id, r.finetune_method or "", r.arch, r.method,
                        r.pretrain_recipe or "", _opt(r.pretrain_seed), r.pretrain_sha256 or "", _opt(r.seed),
                        r.status, r.note, _num(r.paper_top1), *[_num(r.metrics.get(m)) for m in metric_ids]])


def _num(v) -> str:
    return "" if v is None else repr(float(v))


def _opt(v) -> str:
    return "" if v is None else str(v)


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("—", "--").replace("·", r"$\cdot$")


def write_tex(cells: List[Cell], out: Path, ci: str) -> None:
    headers = ["method", "metric", "n", "mean ± std", "Δ [95% CI]", "p", "wins", "expected"]
    parts = [f"% tools/compare.py; needs \\usepackage{{booktabs}}. 95% CI: {'t-interval' if ci == 't' else 'bootstrap'}"
             " of the mean paired difference; p: paired t-test."]
    for title, group in grouped(cells):
        parts += [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_tex(title)}}}",
                  r"\begin{tabular}{llrllrrl}", r"\toprule", " & ".join(_tex(h) for h in headers) + r" \\",
                  r"\midrule"]
        for c in group:
            row = cell_row(c)[:8]
            parts.append(" & ".join(_tex(x) for x in row) + r" \\")
        parts += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    (out / "summary.tex").write_text("\n".join(parts))


# ---- plots -------------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60]


def _mean_band(curves: List[List[Tuple[float, float]]]):
    """x, mean, std over the curves at each x some of them have."""
    at = defaultdict(list)
    for points in curves:
        for x, y in points:
            at[x].append(y)
    xs = sorted(at)
    mean = np.array([np.mean(at[x]) for x in xs])
    std = np.array([np.std(at[x], ddof=1) if len(at[x]) > 1 else 0.0 for x in xs])
    return np.array(xs), mean, std


def _plot_methods(ax, series: Dict[str, List[List[Tuple[float, float]]]], colors: Dict[str, str]) -> bool:
    drawn = False
    for method, curves in series.items():
        curves = [c for c in curves if c]
        if not curves:
            continue
        xs, mean, std = _mean_band(curves)
        ax.plot(xs, mean, color=colors[method], label=f"{method} (n={len(curves)})",
                marker="." if len(xs) < 30 else None)
        if len(curves) > 1:
            ax.fill_between(xs, mean - std, mean + std, color=colors[method], alpha=0.2, linewidth=0)
        drawn = True
    return drawn


def _colors(methods: List[str]) -> Dict[str, str]:
    import matplotlib
    palette = matplotlib.colormaps["tab10"]
    return {m: palette(i % 10) for i, m in enumerate(methods)}


def plot_forest(cells: List[Cell], out: Path) -> List[Path]:
    import matplotlib.pyplot as plt
    written = []
    by_task = defaultdict(list)
    for c in cells:
        if not c.is_baseline:
            by_task[c.kind].append(c)
    for kind, task_cells in sorted(by_task.items(), key=lambda kv: KIND_ORDER[kv[0]]):
        metric_ids = list(dict.fromkeys(c.metric.id for c in task_cells))
        rows = list(dict.fromkeys((c.dataset, c.recipe, c.arch, c.finetune_method, c.method) for c in task_cells))
        fig, axes = plt.subplots(1, len(metric_ids), figsize=(5.5 * len(metric_ids) + 3, 1.2 + 0.45 * len(rows)),
                                 squeeze=False)
        for ax, mid in zip(axes[0], metric_ids):
            lookup = {(c.dataset, c.recipe, c.arch, c.finetune_method, c.method): c for c in task_cells
                      if c.metric.id == mid}
            for y, row in enumerate(rows):
                c = lookup.get(row)
                s = c.stats if c else {}
                if not s or s.get("delta") is None:
                    ax.text(0, y, "no Δ: " + (c.notes[0] if c and c.notes else "—"), va="center", ha="center",
                            fontsize=7, color="grey")
                    continue
                if s.get("ci_low") is not None:
                    ax.errorbar(s["delta"], y, xerr=[[s["delta"] - s["ci_low"]], [s["ci_high"] - s["delta"]]],
                                fmt="o", color="tab:blue", capsize=3)
                else:
                    ax.plot(s["delta"], y, "o", color="tab:blue", mfc="white")
            ax.axvline(0, color="black", linewidth=0.8)
            label = next(c.metric.label for c in task_cells if c.metric.id == mid)
            better = "higher" if next(c.metric.higher_is_better for c in task_cells if c.metric.id == mid) else "lower"
            ax.set_xlabel(f"Δ {label} vs baseline ({better} is better)")
            ax.set_ylim(-0.7, len(rows) - 0.3)
            ax.invert_yaxis()
            ax.grid(axis="x", alpha=0.3)
        axes[0][0].set_yticks(range(len(rows)))
        axes[0][0].set_yticklabels([f"{r[4]}\n{r[0]} · {r[2]} · {r[1]}" for r in rows], fontsize=7)
        for ax in axes[0][1:]:
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels([])
        fig.suptitle(f"{records.TASK_NAMES[kind]}: Δ vs baseline, mean over paired seeds with 95% CI "
                     "(hollow: one pair, no CI)", fontsize=9)
        fig.tight_layout()
        path = out / f"forest_{records.TASK_NAMES[kind]}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def plot_group_curves(runs: List[records.RunRecord], cells: List[Cell], out: Path,
                      baselines: List[str]) -> List[Path]:
    """Per group: training loss, validation of the first compared metric and (pretraining)
    the drop rates of each method; diagnostics when recorded."""
    import matplotlib.pyplot as plt
    written = []
    groups = defaultdict(list)
    for r in runs:
        if r.usable:
            groups[r.group].append(r)
    titles = {c.group: group_title(c) for c in cells}
    first_metric = {}
    for c in cells:
        first_metric.setdefault(c.group, c.metric)
    for index, key in enumerate(sorted(groups, key=lambda g: (KIND_ORDER[g[0]],) + tuple(map(str, g[1:]))), 1):
        group_runs = groups[key]
        if key not in titles:
            continue
        by_method = defaultdict(list)
        for r in group_runs:
            by_method[r.method].append(r)
        baseline = cell_baseline(by_method, baselines)
        methods = sorted(by_method, key=lambda m: (m != baseline, m))
        colors = _colors(methods)
        kind = key[0]
        slug = f"{index:02d}_{_slug(records.TASK_NAMES[kind] + '-' + key[1] + '-' + key[4])}"
        metric = first_metric[key]
        panels = [("training loss", {m: [record_curves.train_loss_curve(r) for r in by_method[m]] for m in methods})]
        val_id = "top1" if kind in ("pretrain", "cls_finetune") else metric.id
        panels.append((f"validation {records.metric_by_id(kind, val_id).label}",
                       {m: [record_curves.val_curve(r, val_id) for r in by_method[m]] for m in methods}))
        if kind == "pretrain":
            # the schedule is the method's: one run per method shows it
            rates = {m: record_curves.drop_rate_curves(by_method[m][0]) for m in methods}
            panels.append(("drop rate (dropout solid, stochastic depth dashed)", rates))
        fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), squeeze=False)
        for ax, (title, series) in zip(axes[0], panels):
            if title.startswith("drop rate"):
                drawn = False
                for m, curves in series.items():
                    for name, style in (("dropout", "-"), ("drop_path", "--")):
                        pts = curves[name].points
                        if pts and any(y for _, y in pts):
                            ax.plot(*zip(*pts), style, color=colors[m], label=f"{m} ({name})")
                            drawn = True
                        elif pts and name == "dropout" and not any(
                                any(y for _, y in curves[n].points) for n in ("dropout", "drop_path")):
                            ax.plot(*zip(*pts), style, color=colors[m], label=f"{m}")
                            drawn = True
                unit = next((c.x_unit for cs in series.values() for c in cs.values() if c), "")
            else:
                drawn = _plot_methods(ax, {m: [c.points for c in cs] for m, cs in series.items()}, colors)
                unit = next((c.x_unit for cs in series.values() for c in cs if c), "")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(unit)
            ax.grid(alpha=0.3)
            if drawn:
                ax.legend(fontsize=6)
            else:
                ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", color="grey")
        fig.suptitle(titles[key] + "  (mean ± std over seeds)", fontsize=8)
        fig.tight_layout()
        path = out / f"curves_{slug}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
        if kind == "pretrain":
            diag = {m: [record_curves.diagnostics_curves(r) for r in by_method[m]] for m in methods}
            if any(c for cs in diag.values() for d in cs for c in d.values()):
                measures = record_curves.DIAGNOSTIC_MEASURES
                fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.6), squeeze=False)
                for ax, (mkey, mtitle) in zip(axes[0], measures):
                    if _plot_methods(ax, {m: [d[mkey].points for d in ds] for m, ds in diag.items()}, colors):
                        ax.legend(fontsize=6)
                    ax.set_title(mtitle, fontsize=9)
                    ax.set_xlabel("epoch")
                    ax.grid(alpha=0.3)
                fig.suptitle(titles[key] + "  (gradient diagnostics, mean ± std over seeds)", fontsize=8)
                fig.tight_layout()
                path = out / f"diagnostics_{slug}.png"
                fig.savefig(path, dpi=100)
                plt.close(fig)
                written.append(path)
    return written


def write_report(out: Path, tables_md: str, plots: List[Path]) -> Path:
    lines = ["# Does dropout pretraining transfer better? (tools/compare.py)", "", tables_md]
    if plots:
        lines += ["## Plots", ""]
        for p in plots:
            lines += [f"### {p.stem}", "", f"![{p.stem}]({p.name})", ""]
    lines += ["Raw numbers: [runs.csv](runs.csv) (one row per run), [summary.csv](summary.csv) (one row per cell); "
              "LaTeX: [summary.tex](summary.tex).", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


# ---- entry point -------------------------------------------------------------------------------

def compare(args) -> Path:
    roots = resolve_roots(args.roots)
    runs = records.discover(roots, skip_unreadable=args.skip_unreadable)
    if not runs:
        raise UserError(f"no run found under {', '.join(map(str, roots))} (a run dir holds a run.json)")
    metrics = select_metrics(args.metric)
    baselines = args.baseline or [DEFAULT_BASELINE]
    found = sorted({r.method for r in runs if r.kind in records.KINDS})
    for baseline in args.baseline or []:
        if baseline not in found:
            raise UserError(f"--baseline {baseline!r}: no run has this pretraining method; found: {'; '.join(found)}")
    if args.metric and "all" not in args.metric:
        kinds = {r.kind for r in runs}
        if not any(metrics(k) for k in kinds):
            raise UserError(f"--metric {' '.join(args.metric)}: no run found reports it (tasks found: "
                            f"{', '.join(sorted(records.TASK_NAMES.get(k, k) for k in kinds))})")
    if not args.no_stale_check:
        records.mark_stale(runs)
    cells = build_cells(runs, metrics, baselines, args.ci)
    counts = summary_counts(runs, cells)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print_console(cells, counts, args.ci, baselines)
    tables_md = markdown_tables(cells, runs, counts, args.ci, baselines)
    (out / "summary.md").write_text("# Comparison (tools/compare.py)\n\n" + tables_md)
    write_csvs(cells, runs, out, args.ci)
    write_tex(cells, out, args.ci)
    plots: List[Path] = []
    if not args.no_plots:
        import matplotlib
        matplotlib.use("Agg")
        plots = plot_forest(cells, out) + plot_group_curves(runs, cells, out, baselines)
    report = write_report(out, tables_md, plots)
    print(f"\nreport: {report} ({len(plots)} plots); also summary.md, summary.csv, runs.csv, summary.tex in {out}")
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("compare.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", nargs="+", metavar="ROOT",
                   help="dir(s) to search for runs (recursively), or suite .yaml file(s) (their output_root)")
    p.add_argument("--out", default="output/compare",
                   help="where to write report.md and the rest (default: %(default)s)")
    p.add_argument("--baseline", action="append", default=None, metavar="METHOD",
                   help=f"the pretraining method every other is compared with (default: {DEFAULT_BASELINE!r}), as "
                        "the runs record it; repeat it to give several: each cell uses the first it has, e.g. "
                        "--baseline 'no dropout' --baseline 'standard-constant drop_path 0.4' (ViT-B's late s.d. "
                        "against standard s.d.)")
    p.add_argument("--metric", action="append", default=None,
                   help="metrics to compare (default: the headline ones: top1 and train_loss for pretraining, "
                        "classification: the dataset's own (mean_per_class for fgvc_aircraft, pets, caltech101, "
                        "flowers102; mAP for voc2007; else top1), box_AP and mask_AP, mIoU); 'all', or ids (repeat the flag for several): " +
                        ", ".join(dict.fromkeys(m.id for m in records.METRIC_RULES)))
    p.add_argument("--ci", choices=("t", "bootstrap"), default="t",
                   help="95%% CI of Δ: Student t-interval (default) or percentile bootstrap (fixed seed)")
    p.add_argument("--skip_unreadable", action="store_true",
                   help="list runs with a damaged record file as 'unreadable' instead of stopping")
    p.add_argument("--no_stale_check", action="store_true",
                   help="do not hash the pretrained checkpoints to find stale transfer runs")
    p.add_argument("--no_plots", action="store_true", help="tables only")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: compare(args))


if __name__ == "__main__":
    sys.exit(main())

"""The plots of a comparison (forest plot of Δ per task, training curves and drop rates
per group, gradient diagnostics), and the diagnostics figure ``tools/analyze_gradients.py``
draws too. Curves come from ``records.curves``; several seeds of a method are drawn
as their mean with a ± std band."""
from __future__ import annotations

import io
import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

import records
from records import curves as record_curves

from .cells import Cell, GroupRuns, group_runs

__all__ = ["plot_forest", "plot_group_curves", "plot_diagnostics", "method_colors"]

Points = List[Tuple[float, float]]


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path, dpi: int) -> Path:
    """The figure as a 256-colour PNG: a quarter of the bytes of matplotlib's RGBA for the
    same look (plots have few colours), so that reports committed to a repository stay small."""
    from PIL import Image
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    _pyplot().close(fig)
    image = Image.open(buffer)
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60]


def method_colors(methods: List[str]) -> Dict[str, tuple]:
    import matplotlib
    palette = matplotlib.colormaps["tab10"]
    return {m: palette(i % 10) for i, m in enumerate(methods)}


def _mean_band(curves: List[Points]):
    """x, mean, std over the curves at each x some of them have."""
    at = defaultdict(list)
    for points in curves:
        for x, y in points:
            at[x].append(y)
    xs = sorted(at)
    mean = np.array([np.mean(at[x]) for x in xs])
    std = np.array([np.std(at[x], ddof=1) if len(at[x]) > 1 else 0.0 for x in xs])
    return np.array(xs), mean, std


def _plot_methods(ax, series: Dict[str, List[Points]], colors: Dict[str, tuple]) -> bool:
    """Each method's curves as their mean (and a ± std band from 2 curves); False if none drawn."""
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


# ---- forest plot -------------------------------------------------------------------------------

class _ForestRow(NamedTuple):
    dataset: str
    recipe: str
    arch: str
    finetune_method: str
    method: str


def _forest_row(c: Cell) -> _ForestRow:
    return _ForestRow(c.dataset, c.recipe, c.arch, c.finetune_method, c.method)


def _forest_panel(ax, cells: List[Cell], rows: List[_ForestRow]) -> None:
    lookup = {_forest_row(c): c for c in cells}
    for y, row in enumerate(rows):
        c = lookup.get(row)
        s = c.stats if c else None
        if s is None or s.delta is None:
            ax.text(0, y, "no Δ: " + (c.notes[0] if c and c.notes else "—"), va="center", ha="center",
                    fontsize=7, color="grey")
        elif s.ci_low is not None:
            ax.errorbar(s.delta, y, xerr=[[s.delta - s.ci_low], [s.ci_high - s.delta]], fmt="o", color="tab:blue",
                        capsize=3)
        else:
            ax.plot(s.delta, y, "o", color="tab:blue", mfc="white")
    metric = cells[0].metric
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"Δ {metric.label} vs baseline ({'higher' if metric.higher_is_better else 'lower'} is better)")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)


def plot_forest(cells: List[Cell], out: Path) -> List[Path]:
    """forest_<task>.png: Δ with its CI for every compared method, a panel per metric."""
    plt = _pyplot()
    by_task = defaultdict(list)
    for c in cells:
        if not c.is_baseline:
            by_task[c.kind].append(c)
    written = []
    for kind in (k for k in records.KINDS if k in by_task):
        task_cells = by_task[kind]
        metric_ids = list(dict.fromkeys(c.metric.id for c in task_cells))
        rows = list(dict.fromkeys(_forest_row(c) for c in task_cells))
        fig, axes = plt.subplots(1, len(metric_ids), figsize=(5.5 * len(metric_ids) + 3, 1.2 + 0.45 * len(rows)),
                                 squeeze=False)
        for ax, mid in zip(axes[0], metric_ids):
            _forest_panel(ax, [c for c in task_cells if c.metric.id == mid], rows)
        axes[0][0].set_yticks(range(len(rows)))
        axes[0][0].set_yticklabels([f"{r.method}\n{r.dataset} · {r.arch} · {r.recipe}" for r in rows], fontsize=7)
        for ax in axes[0][1:]:
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels([])
        fig.suptitle(f"{records.TASK_NAMES[kind]}: Δ vs baseline, mean over paired seeds with 95% CI "
                     "(hollow: one pair, no CI)", fontsize=9)
        written.append(_save(fig, out / f"forest_{records.TASK_NAMES[kind]}.png", dpi=110))
    return written


# ---- curves per group --------------------------------------------------------------------------

def _draw_mean_curves(ax, series: Dict[str, list], colors) -> Tuple[bool, str]:
    drawn = _plot_methods(ax, {m: [c.points for c in cs] for m, cs in series.items()}, colors)
    return drawn, next((c.x_unit for cs in series.values() for c in cs if c), "")


def _any_rate(curve) -> bool:
    return any(y for _, y in curve.points)


def _draw_rates(ax, series: Dict[str, Dict[str, record_curves.Curve]], colors) -> Tuple[bool, str]:
    """One run's drop rates per method: dropout solid, stochastic depth dashed; a method
    without any drop shows its (zero) dropout line."""
    drawn = False
    for m, curves in series.items():
        without_drop = not any(_any_rate(c) for c in curves.values())
        for name, style in (("dropout", "-"), ("drop_path", "--")):
            pts = curves[name].points
            if pts and (_any_rate(curves[name]) or (name == "dropout" and without_drop)):
                ax.plot(*zip(*pts), style, color=colors[m], label=m if without_drop else f"{m} ({name})")
                drawn = True
    return drawn, next((c.x_unit for cs in series.values() for c in cs.values() if c), "")


def _group_panels(g: GroupRuns, metric) -> list:
    """(title, drawer, series) of the curves figure of a group."""
    kind, methods = g.group.kind, g.methods
    panels = [("training loss", _draw_mean_curves,
               {m: [record_curves.train_loss_curve(r) for r in g.by_method[m]] for m in methods})]
    val_id = "top1" if kind in ("pretrain", "cls_finetune") else metric.id
    panels.append((f"validation {records.metric_by_id(kind, val_id).label}", _draw_mean_curves,
                   {m: [record_curves.val_curve(r, val_id) for r in g.by_method[m]] for m in methods}))
    if kind == "pretrain":  # the schedule is the method's: one run per method shows it
        panels.append(("drop rate (dropout solid, stochastic depth dashed)", _draw_rates,
                       {m: record_curves.drop_rate_curves(g.by_method[m][0]) for m in methods}))
    return panels


def _curves_figure(g: GroupRuns, metric, title: str, colors, path: Path) -> Path:
    plt = _pyplot()
    panels = _group_panels(g, metric)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), squeeze=False)
    for ax, (panel_title, draw, series) in zip(axes[0], panels):
        drawn, unit = draw(ax, series, colors)
        ax.set_title(panel_title, fontsize=9)
        ax.set_xlabel(unit)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=6)
        else:
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", color="grey")
    fig.suptitle(title + "  (mean ± std over seeds)", fontsize=8)
    return _save(fig, path, dpi=100)


def plot_diagnostics(series: Dict[str, List[Dict[str, record_curves.Curve]]], colors, path: Path,
                     title: Optional[str] = None) -> Path:
    """The paper's gradient diagnostics, a panel per measure; ``series``: label -> the
    ``records.curves.diagnostics_curves`` of its runs (mean ± std over them)."""
    plt = _pyplot()
    measures = record_curves.DIAGNOSTIC_MEASURES
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.6), squeeze=False)
    for ax, (key, measure_title) in zip(axes[0], measures):
        if _plot_methods(ax, {m: [d[key].points for d in ds] for m, ds in series.items()}, colors):
            ax.legend(fontsize=6)
        ax.set_title(measure_title, fontsize=9)
        ax.set_xlabel(next((d[key].x_unit for ds in series.values() for d in ds), "epoch"))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=8)
    return _save(fig, path, dpi=100)


def plot_group_curves(runs: List[records.RunRecord], cells: List[Cell], out: Path,
                      baselines: List[str]) -> List[Path]:
    """Per group of finished runs: curves_<n>_<group>.png (training loss, validation of the
    first compared metric, pretraining's drop rates) and, where recorded,
    diagnostics_<n>_<group>.png."""
    titles, first_metric = {}, {}
    for c in cells:
        titles.setdefault(c.group, c.title)
        first_metric.setdefault(c.group, c.metric)
    written = []
    for index, g in enumerate(group_runs([r for r in runs if r.usable], baselines), 1):
        if g.group not in titles:
            continue
        colors = method_colors(g.methods)
        slug = f"{index:02d}_{_slug(records.TASK_NAMES[g.group.kind] + '-' + g.group.dataset + '-' + g.group.arch)}"
        written.append(_curves_figure(g, first_metric[g.group], titles[g.group], colors, out / f"curves_{slug}.png"))
        if g.group.kind == "pretrain":
            diag = {m: [record_curves.diagnostics_curves(r.run_dir) for r in g.by_method[m]] for m in g.methods}
            if any(c for ds in diag.values() for d in ds for c in d.values()):
                written.append(plot_diagnostics(diag, colors, out / f"diagnostics_{slug}.png",
                                                titles[g.group] + "  (gradient diagnostics, mean ± std over seeds)"))
    return written

"""The written answer: the console tables, summary.md, summary.csv, runs.csv,
summary.tex and report.md, all from pandas frames of the cells and runs (``to_csv``,
``to_markdown`` through tabulate, ``Styler.to_latex`` with its LaTeX escaping)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pandas as pd

import records
from common.errors import UserError
from common.files import atomic_write
from records import RunRecord

from .cells import Cell, grouped
from .stats import PairedStats, describe, method_text

__all__ = ["cell_row", "summary_line", "baseline_text", "print_console", "markdown_tables",
           "write_csvs", "write_tex", "write_report", "readme_markers", "readme_text", "fill_readme"]

CSV_LINES = "\r\n"  # the csv module's line ending, which the files have always had


# ---- one cell as text --------------------------------------------------------------------------

def _digits(cell: Cell) -> int:
    return cell.metric.digits


def _fixed(v: Optional[float], digits: int, signed: bool = False) -> str:
    if v is None:
        return ""
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _mean_std(cell: Cell) -> str:
    mean, std = cell.mean_std
    d = _digits(cell)
    if mean is None:
        return "—"
    return _fixed(mean, d) + (f" ± {std:.{d}f}" if std is not None else "")


def _delta(cell: Cell) -> str:
    s, d = cell.stats, _digits(cell)
    if cell.is_baseline:
        return "(baseline)"
    if s is None or s.delta is None:
        return "—"
    text = _fixed(s.delta, d, signed=True)
    if s.ci_low is not None:
        text += f" [{_fixed(s.ci_low, d, True)}, {_fixed(s.ci_high, d, True)}]"
    return text


def _p(cell: Cell) -> str:
    p = cell.stats.p if cell.stats else None
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _wins(cell: Cell) -> str:
    s = cell.stats
    if s is None or s.wins is None:
        return ""
    return f"{round(s.wins * s.n_pairs)}/{s.n_pairs}"


def _expected(cell: Cell) -> str:
    if cell.expected is None:
        return ""
    return f"{cell.expected:.1f}" + (f" ({cell.expected_delta:+.1f})" if cell.expected_delta is not None else "")


def cell_row(cell: Cell) -> Dict[str, str]:
    """A cell as the tables show it: {column header: text}."""
    return {"method": cell.method, "metric": cell.metric.label, "n": str(len(cell.values)),
            "mean ± std": _mean_std(cell), "Δ vs baseline [95% CI]": _delta(cell), "p": _p(cell),
            "wins": _wins(cell), "expected": _expected(cell), "notes": "; ".join(cell.notes)}


def _frame(cells: List[Cell]) -> pd.DataFrame:
    return pd.DataFrame([cell_row(c) for c in cells])


def _text_table(frame: pd.DataFrame, tablefmt: str) -> str:
    return frame.to_markdown(index=False, tablefmt=tablefmt, disable_numparse=True)


# ---- console and markdown ----------------------------------------------------------------------

def summary_line(counts: Dict[str, int]) -> str:
    runs = (f"{counts['runs']} runs: {counts['finished']} finished, {counts['unfinished']} unfinished, "
            f"{counts['no metrics']} without metrics, {counts['stale']} stale, {counts['unreadable']} unreadable")
    cells = (f"{counts['cells']} cells (method x metric): {counts['cells without baseline']} without baseline, "
             f"{counts['cells with uneven seeds']} with uneven seeds, {counts['cells with a CI']} with a CI")
    return f"{runs}; {cells}"


def baseline_text(baselines: List[str]) -> str:
    if len(baselines) == 1:
        return f"baseline: {baselines[0]!r}"
    return "baseline: the first of " + ", ".join(map(repr, baselines)) + " that the cell has"


def print_console(cells: List[Cell], counts: Dict[str, int], ci: str, baselines: List[str]) -> None:
    for title, group in grouped(cells):
        print(f"\n== {title}")
        print(_text_table(_frame(group), "simple"))
    print("\n" + baseline_text(baselines))
    for line in method_text(ci):
        print(line)
    print(summary_line(counts))


def markdown_tables(cells: List[Cell], runs: List[RunRecord], counts, ci: str, baselines: List[str]) -> str:
    lines = [f"{baseline_text(baselines).capitalize()}. {summary_line(counts)}.", ""]
    lines += [f"* {t}" for t in method_text(ci)]
    lines += ["* Columns: n = finished runs (seeds) of the method; mean ± std over them; Δ vs baseline with its 95% "
              "CI; p = paired t-test; wins = pairs where the method is better; expected = the paper's ImageNet "
              "top-1 for the preset (its Δ in brackets); notes = runs left out and why, missing baseline, "
              "uneven seeds."]
    for title, group in grouped(cells):
        lines += ["", f"### {title}", "", _text_table(_frame(group), "github")]
    problems = pd.DataFrame([{"run": str(r.run_dir), "status": r.status, "why": r.note}
                             for r in runs if r.status != records.FINISHED], columns=["run", "status", "why"])
    if len(problems):
        lines += ["", "### Runs left out", "", _text_table(problems, "github")]
    return "\n".join(lines) + "\n"


# ---- CSV ---------------------------------------------------------------------------------------

def _num(v) -> str:
    return "" if v is None else repr(float(v))


def _opt(v) -> str:
    return "" if v is None else str(v)


def _summary_record(c: Cell, ci: str) -> dict:
    mean, std = c.mean_std
    s = c.stats or PairedStats()  # no comparison: every statistic empty
    return {
        "task": c.task, "dataset": c.dataset, "recipe": c.recipe, "finetune_method": c.finetune_method,
        "arch": c.arch, "method": c.method, "is_baseline": c.is_baseline, "metric": c.metric.id,
        "higher_is_better": c.metric.higher_is_better, "n": len(c.values), "mean": _num(mean), "std": _num(std),
        "n_baseline": len(c.baseline_values), "baseline_mean": _num(describe(c.baseline_values)[0]),
        "n_pairs": s.n_pairs if c.stats else "", "delta": _num(s.delta), "ci_low": _num(s.ci_low),
        "ci_high": _num(s.ci_high), "ci_method": ci if s.ci_low is not None else "",
        "p_value": _num(s.p), "wins": _num(s.wins), "expected": _num(c.expected),
        "expected_delta": _num(c.expected_delta), "unfinished": c.status_counts.get(records.UNFINISHED, 0),
        "no_metrics": c.status_counts.get(records.NO_METRICS, 0), "stale": c.status_counts.get(records.STALE, 0),
        "notes": "; ".join(c.notes),
    }


def _run_record(r: RunRecord, metric_ids: List[str]) -> dict:
    return {
        "run_dir": str(r.run_dir), "task": r.task, "dataset": r.dataset, "recipe": r.recipe_id,
        "finetune_method": r.finetune_method or "", "arch": r.arch, "method": r.method,
        "pretrain_recipe": r.pretrain_recipe or "", "pretrain_seed": _opt(r.pretrain_seed),
        "pretrain_sha256": r.pretrain_sha256 or "", "seed": _opt(r.seed), "status": r.status, "note": r.note,
        "paper_top1": _num(r.paper_top1), **{m: _num(r.metrics.get(m)) for m in metric_ids},
    }


def write_csvs(cells: List[Cell], runs: List[RunRecord], out: Path, ci: str) -> None:
    """summary.csv (one row per cell) and runs.csv (one row per run, raw numbers)."""
    pd.DataFrame([_summary_record(c, ci) for c in cells]).to_csv(out / "summary.csv", index=False,
                                                                 lineterminator=CSV_LINES)
    metric_ids = list(dict.fromkeys(m.id for m in records.METRIC_RULES))
    pd.DataFrame([_run_record(r, metric_ids) for r in runs]).to_csv(out / "runs.csv", index=False,
                                                                    lineterminator=CSV_LINES)


# ---- LaTeX -------------------------------------------------------------------------------------

TEX_HEADERS = {"method": "method", "metric": "metric", "n": "n", "mean ± std": "mean ± std",
               "Δ vs baseline [95% CI]": "Δ [95% CI]", "p": "p", "wins": "wins", "expected": "expected"}
_TEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "—": "--", "·": r"$\cdot$"}


def _tex_symbols(text: str) -> str:
    for symbol, tex in _TEX_SYMBOLS.items():
        text = text.replace(symbol, tex)
    return text


def _tex_styler(frame: pd.DataFrame):
    """pandas' LaTeX escaping of every cell and header, then the symbols the tables use."""
    return (frame.style.hide(axis="index").format(_tex_symbols, escape="latex")
            .format_index(_tex_symbols, escape="latex", axis=1))


def _tex_text(text: str) -> str:
    """A text outside a table (a caption), escaped as the cells are."""
    tabular = _tex_styler(pd.DataFrame([[text]])).hide(axis="columns").to_latex()
    return tabular.splitlines()[1].removesuffix(r" \\")


def write_tex(cells: List[Cell], out: Path, ci: str) -> None:
    """summary.tex: a booktabs table per group."""
    parts = [f"% tools/compare.py; needs \\usepackage{{booktabs}}. 95% CI: {'t-interval' if ci == 't' else 'bootstrap'}"
             " of the mean paired difference; p: paired t-test."]
    for title, group in grouped(cells):
        table = _frame(group)[list(TEX_HEADERS)].rename(columns=TEX_HEADERS)
        tabular = _tex_styler(table).to_latex(column_format="llrllrrl", hrules=True)
        parts += [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_tex_text(title)}}}",
                  tabular.rstrip("\n"), r"\end{table}", ""]
    (out / "summary.tex").write_text("\n".join(parts))


# ---- the report --------------------------------------------------------------------------------

def readme_markers(out: Path) -> Tuple[str, str]:
    """The lines that hold compare's block for ``--out out`` in a markdown file (``--readme``)."""
    return (f"<!-- compare --out {out}: written by tools/compare.py --readme; edits here are overwritten -->",
            f"<!-- end of compare --out {out} -->")


def readme_text(readme: Path, out: Path) -> str:
    """``readme``'s text, checked to hold one block for ``--out out`` (a UserError naming it otherwise)."""
    begin, end = readme_markers(out)
    try:
        text = readme.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--readme {readme}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise UserError(f"--readme {readme}: expected one block between the lines {begin!r} and {end!r} "
                        "(add them where the tables go)")
    return text


def fill_readme(readme: Path, out: Path, tables_md: str, plots: List[Path], provenance: str) -> None:
    """Replace the block between ``readme_markers(out)`` in ``readme`` with the provenance, the
    tables and the diagnostics figures (linked relative to ``readme``)."""
    begin, end = readme_markers(out)
    text = readme_text(readme, out)
    figures = [f"![{p.stem}]({os.path.relpath(p, readme.parent)})" for p in plots if p.name.startswith("diagnostics_")]
    body = "\n".join([provenance, "", tables_md.replace("\n### ", "\n#### "), *[f + "\n" for f in figures]])
    head, rest = text.split(begin, 1)
    filled = head + begin + "\n" + body.rstrip("\n") + "\n" + end + rest.split(end, 1)[1]
    atomic_write(readme, lambda f: f.write(filled.encode()))


def write_report(out: Path, tables_md: str, plots: List[Path], provenance: str = "") -> Path:
    lines = ["# Does dropout pretraining transfer better? (tools/compare.py)", "",
             *([provenance, ""] if provenance else []), tables_md]
    if plots:
        lines += ["## Plots", ""]
        for p in plots:
            lines += [f"### {p.stem}", "", f"![{p.stem}]({p.name})", ""]
    lines += ["Raw numbers: [runs.csv](runs.csv) (one row per run), [summary.csv](summary.csv) (one row per cell); "
              "LaTeX: [summary.tex](summary.tex).", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path

"""The compare command (``tools/compare.py``): its flags, its help (``HELP``) and the
steps from the roots to the written answer."""
from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from pathlib import Path
from typing import List

import records
from common.errors import run_cli
from common.provenance import source_commit

from .cells import build_cells, summary_counts
from .discovery import DEFAULT_BASELINE, check_request, find_runs, select_metrics
from .tables import fill_readme, markdown_tables, print_console, readme_text, write_csvs, write_report, write_tex

__all__ = ["HELP", "compare", "build_parser", "main"]

HELP = """Does pretraining with early/late dropout (or stochastic depth) beat the no-dropout
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
  wins         pairs where the method is better (higher; lower for losses)
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


def provenance(runs, argv: List[str]) -> str:
    """Which command and code made the report, and which code made its runs (run.json's commit)."""
    made = sorted({str(r.info.get("commit")) for r in runs if r.info.get("commit")})
    unknown = sum(1 for r in runs if not r.info.get("commit"))
    return (f"Made by `{shlex.join(['python', 'tools/compare.py', *argv])}` at commit "
            f"{source_commit() or 'unknown (not a git checkout)'} on {datetime.date.today().isoformat()}; "
            f"its {len(runs)} runs were made at commit {', '.join(made) if made else 'unknown'}"
            + (f" ({unknown} of them record no commit)" if unknown and made else "") + ".")


def compare(args) -> Path:
    if args.readme:  # before any work: a README without its block stops here
        readme_text(Path(args.readme), Path(args.out))
    runs = find_runs(args.roots, args.skip_unreadable)
    made_by = provenance(runs, args.argv)  # before anything is written: the tree as the command found it
    metrics = select_metrics(args.metric)
    baselines = args.baseline or [DEFAULT_BASELINE]
    check_request(runs, args.baseline, args.metric, metrics)
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
        from .plots import plot_forest, plot_group_curves  # matplotlib only when plotting
        plots = plot_forest(cells, out) + plot_group_curves(runs, cells, out, baselines)
    report = write_report(out, tables_md, plots, made_by)
    if args.readme:
        fill_readme(Path(args.readme), out, tables_md, plots, made_by)
    print(f"\nreport: {report} ({len(plots)} plots); also summary.md, summary.csv, runs.csv, summary.tex in {out}")
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("compare.py", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
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
                        "flowers102; mAP for voc2007; else top1), box_AP and mask_AP, mIoU); 'all', or ids "
                        "(repeat the flag for several): " +
                        ", ".join(dict.fromkeys(m.id for m in records.METRIC_RULES)))
    p.add_argument("--ci", choices=("t", "bootstrap"), default="t",
                   help="95%% CI of Δ: Student t-interval (default) or percentile bootstrap (fixed seed)")
    p.add_argument("--skip_unreadable", action="store_true",
                   help="list runs with a damaged record file as 'unreadable' instead of stopping")
    p.add_argument("--no_stale_check", action="store_true",
                   help="do not hash the pretrained checkpoints to find stale transfer runs")
    p.add_argument("--no_plots", action="store_true", help="tables only")
    p.add_argument("--readme", metavar="FILE",
                   help="also write the tables and the diagnostics figures into FILE (markdown), between the "
                        "lines '<!-- compare --out OUT: ... -->' and '<!-- end of compare --out OUT -->' it holds "
                        "(README's study results: generated, never typed in)")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return run_cli(lambda: compare(args))


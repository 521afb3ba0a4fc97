"""The answer: does pretraining with early/late dropout (or stochastic depth) beat the
no-dropout baseline? ``tools/compare.py`` is its command line.

* ``analysis.discovery``: the roots (dirs or suite files), the runs under them
  (``records.discover``), the metrics asked for;
* ``analysis.cells``: groups of comparable runs and their cells (``Cell``: one
  method of one group for one metric), paired by seed;
* ``analysis.stats``: mean ± std and the paired statistics (scipy);
* ``analysis.tables``: console, summary.md, summary.csv, runs.csv, summary.tex,
  report.md (pandas);
* ``analysis.plots``: forest plots, curves, gradient diagnostics (matplotlib; shared
  with ``tools/analyze_gradients.py``);
* ``analysis.cli``: the flags and the steps.

Torch-free: it imports ``records`` and ``common`` only, so it runs on a login node.
"""
from .cells import Cell, build_cells
from .cli import compare, main
from .stats import PairedStats, describe, paired_stats

__all__ = ["Cell", "build_cells", "compare", "main", "PairedStats", "describe", "paired_stats"]

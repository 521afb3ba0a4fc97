"""Does pretraining with early/late dropout (or stochastic depth) beat the no-dropout
baseline? Paired seeds, 95% CIs, per task: ``python tools/compare.py --help`` says
how (the code is the ``analysis`` package).

    python tools/compare.py output/                          # everything the suite wrote
    python tools/compare.py suites/paper.yaml                # a suite file: its output_root
"""
import sys

from analysis.cli import build_parser, compare, main

__all__ = ["main", "compare", "build_parser"]

if __name__ == "__main__":
    sys.exit(main())

"""ImageNet pretraining with per-iteration dropout / stochastic-depth schedules.

    python -m pretrain --model vit_tiny --dropout 0.1 --drop_mode early --cutoff_epoch 50 ...
    torchrun --nproc_per_node 8 -m pretrain --config my_run.yaml
"""
from __future__ import annotations

import sys
from typing import List, Optional

from backbones.errors import run_cli

from .config import parse_args
from .run import PretrainRun


def run(args) -> dict:
    return PretrainRun(args).run()


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

"""Flags of a pretraining run: the training flags every run shares
(training/config.py) plus the ImageNet folder, starting weights and the paper's
gradient diagnostics."""
from __future__ import annotations

import argparse
from typing import List, Optional

from training.config import ConfigError, add_training_args
from training.config import parse_args as parse_training_args

__all__ = ["build_parser", "parse_args"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("pretrain", description="ImageNet pretraining with early/late "
                                "dropout or stochastic depth (Liu et al., ICML 2023)")
    add_training_args(p)
    g = p.add_argument_group("data")
    g.add_argument("--data_path", default="data/imagenet", help="folder with train/<class>/* and val/<class>/*")
    g.add_argument("--finetune", default="", help="weights to start from (for --eval of exported weights)")
    g.add_argument("--paper_top1", type=float, default=None,
                   help="the paper's ImageNet top-1 for this preset (metadata: recorded in run.json and shown "
                   "by tools/compare.py as 'expected'; it changes nothing in training)")
    g = p.add_argument_group("diagnostics (the paper's Section 3; written to diagnostics.jsonl)")
    g.add_argument("--diag_every", type=int, default=0,
                   help="measure grad norm, model distance, GDV and GDE every N updates (0: off)")
    g.add_argument("--diag_until_epoch", type=float, default=0.0,
                   help="measure only up to this (fractional) epoch, where the paper's early-training "
                   "claims live; 0: the whole run")
    g.add_argument("--diag_batches", type=int, default=8, help="mini-batches compared for GDV/GDE")
    g.add_argument("--diag_samples", type=int, default=2048,
                   help="training images of the whole-dataset gradient, a fixed set disjoint from the "
                   "compared mini-batches; 0: every training image but those")
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    args = parse_training_args(build_parser(), argv)
    if args.diag_every < 0:
        raise ConfigError(f"--diag_every {args.diag_every} must be >= 0")
    if args.diag_until_epoch < 0:
        raise ConfigError(f"--diag_until_epoch {args.diag_until_epoch} must be >= 0")
    if args.diag_batches < 2:
        raise ConfigError(f"--diag_batches {args.diag_batches} must be >= 2 (GDV compares pairs)")
    return args

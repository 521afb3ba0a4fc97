"""Flags of a classification-transfer run: the training flags every run of the
suite shares (training/config.py) plus the dataset and the starting checkpoint.
Defaults are the fine-tuning recipe of ``cls_configs/_base_/finetune.yaml``."""
from __future__ import annotations

import argparse
import math
from typing import List, Optional

import numpy as np

from training.config import ConfigError, _bool, add_training_args
from training.config import parse_args as parse_training_args

from .datasets import CHOICES, MULTILABEL

# Kornblith et al. (2019), appendix: 45 log-spaced values of the L2 penalty (our reading of its range).
DEFAULT_L2_GRID = [float(f"{v:.6g}") for v in np.logspace(-6, 5, 45)]

__all__ = ["build_parser", "parse_args", "ConfigError"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("cls_finetune", description="Fine-tune or linear-probe a pretrained "
                                "checkpoint on a small classification dataset")
    add_training_args(p)
    g = p.add_argument_group("transfer")
    g.add_argument("--dataset", default="imagefolder", choices=CHOICES)
    g.add_argument("--data_path", default="data/cifar10",
                   help="the root torchvision's class reads (imagefolder: <root>/train and <root>/test or val)")
    g.add_argument("--check_md5", type=_bool, default=True,
                   help="let torchvision verify CIFAR/Flowers/STL-10 md5 sums; false for a re-packed copy")
    g.add_argument("--finetune", default="", help="pretrained checkpoint to start from (weights.pth of "
                   "tools/pretrain.sh, or the paper's release)")
    g.add_argument("--linear_probe", type=_bool, nargs="?", const=True, default=False,
                   help="freeze the backbone (kept in eval mode) and train only a new linear head")
    g.add_argument("--probe_features", default="per_step", choices=("per_step", "cached"),
                   help="linear probe: per_step runs the frozen backbone on every augmented batch; cached "
                   "computes each image's features once (no augmentation, eval mode) and trains the head on them")
    g.add_argument("--probe_bn", type=_bool, nargs="?", const=True, default=True,
                   help="linear probe: a BatchNorm without affine before the new head, normalising the frozen "
                   "features (MAE's main_linprobe.py); false: the linear head alone")
    f = p.add_argument_group("fixed-feature protocol (--fixed_feature; cls_finetune/fixed_feature.py)")
    f.add_argument("--fixed_feature", type=_bool, nargs="?", const=True, default=False,
                   help="Kornblith et al.'s fixed-feature protocol: frozen features computed once, L2-regularised "
                   "logistic regression (scikit-learn, L-BFGS), penalty chosen on a validation split, refit on "
                   "train + val (implies --linear_probe --probe_features cached)")
    f.add_argument("--l2_grid", type=float, nargs="*", default=DEFAULT_L2_GRID,
                   help="penalties lambda tried (objective: mean loss + lambda/2 |W|^2 on standardised features); "
                   "default 45 values log-spaced over [1e-6, 1e5]")
    f.add_argument("--val_fraction", type=float, default=0.1,
                   help="share of the training split held out (stratified, by --seed) to choose the penalty, "
                   "for datasets without an official val split")
    f.add_argument("--standardize", type=_bool, default=True,
                   help="scale each feature to mean 0, std 1 over the fitting set before the regression")
    f.add_argument("--lbfgs_max_iter", type=int, default=1000, help="L-BFGS iterations per fit at most")
    g.add_argument("--num_classes", type=int, default=0,
                   help="classes of the new head; 0 = the dataset's (a different number is an error)")
    # Fine-tuning recipe (see cls_configs/_base_/finetune.yaml): the model comes from the checkpoint.
    p.set_defaults(model=None, output_dir="output/cls", epochs=100, batch_size=64, lr=5e-4, warmup_epochs=5,
                   layer_decay=0.75, min_lr=1e-6)
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    args = parse_training_args(build_parser(), argv)
    if args.fixed_feature:
        grid = args.l2_grid if isinstance(args.l2_grid, list) else None
        if not grid:
            raise ConfigError(f"--l2_grid: the penalty grid is empty ({args.l2_grid!r}); give one or more "
                              "lambda values, e.g. --l2_grid 1e-4 1e-3 1e-2")
        bad = [v for v in grid if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0]
        if bad:
            raise ConfigError(f"--l2_grid: penalties must be positive numbers, not {bad[0]!r}")
        if not 0 < args.val_fraction < 1:
            raise ConfigError(f"--val_fraction {args.val_fraction} must lie in (0, 1)")
        if args.lbfgs_max_iter < 1:
            raise ConfigError(f"--lbfgs_max_iter {args.lbfgs_max_iter} must be at least 1")
        args.linear_probe, args.probe_features = True, "cached"  # the protocol: frozen features, computed once
        args.probe_bn = False  # the protocol standardises the features itself; its head is one linear layer
    if args.dataset in MULTILABEL and (args.mixup > 0 or args.cutmix > 0 or args.smoothing > 0):
        raise ConfigError(f"--dataset {args.dataset} is multi-label (a sigmoid per class): set --mixup 0 "
                          "--cutmix 0 --smoothing 0 (they assume one label per image)")
    if args.linear_probe and (args.dropout > 0 or args.drop_path > 0):
        raise ConfigError(f"--linear_probe: the frozen backbone runs in eval mode, so --dropout {args.dropout} / "
                          f"--drop_path {args.drop_path} would do nothing; set both to 0")
    if args.probe_features == "cached":
        if not args.linear_probe:
            raise ConfigError("--probe_features cached: features can be cached only for a --linear_probe "
                              "(fine-tuning changes the backbone at every update)")
        if args.mixup > 0 or args.cutmix > 0 or args.model_ema:
            raise ConfigError("--probe_features cached trains the head on fixed feature vectors: set --mixup 0 "
                              "--cutmix 0 (they mix images) and leave --model_ema off")
    if args.num_classes < 0:
        raise ConfigError(f"--num_classes {args.num_classes} must be >= 0")
    return args

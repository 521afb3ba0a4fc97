"""Flags of a classification-transfer run: the training flags every run of the
suite shares (training/config.py) plus the dataset and the starting checkpoint.
Defaults are the fine-tuning recipe of ``cls_configs/_base_/finetune.yaml``."""
from __future__ import annotations

import argparse
from typing import List, Optional

from training.config import ConfigError, _bool, add_training_args
from training.config import parse_args as parse_training_args

from .datasets import CHOICES

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
    g.add_argument("--num_classes", type=int, default=0,
                   help="classes of the new head; 0 = the dataset's (a different number is an error)")
    # Fine-tuning recipe (see cls_configs/_base_/finetune.yaml): the model comes from the checkpoint.
    p.set_defaults(model=None, output_dir="output/cls", epochs=100, batch_size=64, lr=5e-4, warmup_epochs=5,
                   layer_decay=0.75, min_lr=1e-6)
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    args = parse_training_args(build_parser(), argv)
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

"""Command line and YAML config of a training run, in the paper's vocabulary: the
flags every run shares (pretraining and classification transfer add theirs in
``pretrain/config.py`` and ``cls_finetune/config.py``).

YAML files given with ``--config`` set defaults (keys are the flag names
without dashes; later files win); flags on the command line override them. A
config may start from others with ``_base_: [relative/path.yaml, ...]`` (later
files and the file itself win), as OpenMMLab configs do. The effective config is
saved as ``config.yaml`` in the output dir, so ``--config <out>/config.yaml``
reproduces a run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional

import yaml

from backbones.layer_decay import check_rate
from common.errors import UserError
from common.files import read_yaml_mapping, write_yaml

from .fast_paths import ADAMW_CHOICES


class ConfigError(UserError):
    """A bad flag or config value: the message names it."""


def _bool(v: str) -> bool:
    if isinstance(v, bool):
        return v
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {v!r}")


def _dict(v) -> dict:
    if isinstance(v, dict):
        return v
    try:
        out = yaml.safe_load(v) if v else {}
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"not a YAML/JSON mapping: {exc}") from None
    if not isinstance(out, dict):
        raise argparse.ArgumentTypeError(f"expected a mapping such as '{{depth: 4}}', got {v!r}")
    return out


def add_training_args(p: argparse.ArgumentParser) -> None:
    """Flags every training run of the suite shares (pretraining and classification
    transfer): model, drop schedule, optimisation, augmentation, run control."""
    p.add_argument("--config", nargs="+", default=None,
                   help="YAML file(s) with any of the flags below; later files win, flags win over files")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="vit_tiny", help="paper name (vit_tiny, ..., swin_femto) or any timm model")
    g.add_argument("--model_kwargs", type=_dict, default={},
                   help="extra timm.create_model arguments as YAML, e.g. '{depth: 4, patch_size: 8}'")
    g.add_argument("--input_size", type=int, default=224)
    g = p.add_argument_group("drop schedule")
    g.add_argument("--dropout", type=float, default=0.0, help="dropout rate p")
    g.add_argument("--drop_path", type=float, default=0.0, help="stochastic depth rate (deepest block)")
    g.add_argument("--drop_mode", default="standard", help="standard | early | late")
    g.add_argument("--drop_schedule", default="constant",
                   help="constant | linear | cosine (early) | curriculum (standard)")
    g.add_argument("--cutoff_epoch", type=float, default=0.0)
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=300)
    g.add_argument("--batch_size", type=int, default=128, help="per process, per micro-batch")
    g.add_argument("--update_freq", type=int, default=1, help="gradient accumulation steps")
    g.add_argument("--lr", type=float, default=4e-3, help="peak learning rate")
    g.add_argument("--min_lr", type=float, default=1e-6)
    g.add_argument("--warmup_epochs", type=float, default=50)
    g.add_argument("--weight_decay", type=float, default=0.05)
    g.add_argument("--weight_decay_end", type=float, default=None,
                   help="final weight decay of a cosine wd schedule (default: constant)")
    g.add_argument("--layer_decay", type=float, default=1.0,
                   help="layer-wise lr decay rate in (0, 1]; 1 = off (layer ids: backbones/layer_decay.py)")
    g.add_argument("--opt_betas", type=float, nargs=2, default=[0.9, 0.999])
    g.add_argument("--clip_grad", type=float, default=None)
    g.add_argument("--amp", default="auto", help="auto (bf16 on GPUs that support it) | bf16 | fp16 | none")
    g = p.add_argument_group("augmentation and regularisation")
    g.add_argument("--mixup", type=float, default=0.8)
    g.add_argument("--cutmix", type=float, default=1.0)
    g.add_argument("--mixup_prob", type=float, default=1.0)
    g.add_argument("--mixup_switch_prob", type=float, default=0.5)
    g.add_argument("--smoothing", type=float, default=0.1)
    g.add_argument("--aa", default="rand-m9-mstd0.5-inc1", help="timm auto-augment policy, 'none' to disable")
    g.add_argument("--reprob", type=float, default=0.25, help="random erasing probability")
    g.add_argument("--scale", type=float, nargs=2, default=[0.08, 1.0], help="random-resized-crop area range")
    g.add_argument("--color_jitter", type=float, default=0.4, help="used only when --aa is none")
    g.add_argument("--crop_pct", type=float, default=0.875)
    g.add_argument("--model_ema", type=_bool, nargs="?", const=True, default=False)
    g.add_argument("--model_ema_decay", type=float, default=0.9999)
    g = p.add_argument_group("run")
    g.add_argument("--output_dir", default="output/pretrain")
    g.add_argument("--resume", default="", help="checkpoint path, or 'auto' for the newest in output_dir")
    g.add_argument("--eval", type=_bool, nargs="?", const=True, default=False,
                   help="only evaluate the --resume / --finetune checkpoint")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--num_workers", type=int, default=8)
    g.add_argument("--eval_every", type=int, default=1,
                   help="evaluate every N epochs; the last epoch always is (best_top1: the best evaluated epoch)")
    g.add_argument("--ckpt_every_iters", type=int, default=1000,
                   help="also save checkpoint-last.pth every N updates within an epoch (0: only at epoch end); "
                   "epoch ends save when evaluated, others at a multiple of N (with 0: every epoch end)")
    g.add_argument("--print_freq", type=int, default=50)
    g.add_argument("--tensorboard", type=_bool, default=True)
    g = p.add_argument_group("speed (GPU fast paths; defaults run the paper's recipe as is)")
    g.add_argument("--fused_adamw", default="off",
                   help="off (torch's default AdamW) | auto (fused on CUDA, foreach elsewhere) | on (fused) | foreach")
    g.add_argument("--channels_last", type=_bool, nargs="?", const=True, default=False,
                   help="NHWC model and inputs (helps convolutions on GPUs: ConvNeXt)")
    g.add_argument("--compile", type=_bool, nargs="?", const=True, default=False,
                   help="torch.compile the training forward (drop sites stay eager when their rate changes per update)")


def load_yaml_config(path: Path, _seen: tuple = ()) -> dict:
    """A YAML config with its ``_base_`` files merged in (bases first)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config: no file {path}" + (f" (a _base_ of {_seen[-1]})" if _seen else ""))
    if path.resolve() in _seen:
        raise ConfigError(f"--config {path}: _base_ files include each other in a loop")
    values = read_yaml_mapping(path, f"--config {path}", "flag names to values", ConfigError)
    bases = values.pop("_base_", [])
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged.update(load_yaml_config(path.parent / base, _seen + (path.resolve(),)))
    merged.update(values)
    return merged


def parse_args(parser: argparse.ArgumentParser, argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Flags of ``parser`` with the ``--config`` files' values as defaults, validated."""
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        values: dict = {}
        known = {a.dest for a in parser._actions} - {"config", "help"}
        for path in map(Path, pre.config):
            file_values = load_yaml_config(path)
            unknown = sorted(set(file_values) - known)
            if unknown:
                raise ConfigError(f"--config {path}: unknown key(s) {', '.join(unknown)} for {parser.prog}")
            values.update(file_values)
        parser.set_defaults(**values)
    args = parser.parse_args(argv)
    validate(args)
    return args


def validate(args: argparse.Namespace) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    need(args.epochs >= 1, f"--epochs {args.epochs} must be at least 1")
    need(args.batch_size >= 1, f"--batch_size {args.batch_size} must be at least 1")
    need(args.update_freq >= 1, f"--update_freq {args.update_freq} must be at least 1")
    need(args.lr > 0, f"--lr {args.lr} must be positive")
    need(0 <= args.warmup_epochs <= args.epochs,
         f"--warmup_epochs {args.warmup_epochs} must lie in [0, --epochs {args.epochs}]")
    need(0 <= args.smoothing < 1, f"--smoothing {args.smoothing} must lie in [0, 1)")
    need(args.amp in ("auto", "bf16", "fp16", "none"), f"--amp {args.amp!r}: choose auto, bf16, fp16 or none")
    need(args.input_size >= 8, f"--input_size {args.input_size} is too small")
    try:
        check_rate(args.layer_decay)
    except ValueError as exc:
        raise ConfigError(f"--layer_decay: {exc}") from None
    need(args.num_workers >= 0, f"--num_workers {args.num_workers} must be >= 0")
    need(args.eval_every >= 1, f"--eval_every {args.eval_every} must be at least 1 (epochs between evaluations)")
    need(args.ckpt_every_iters >= 0, f"--ckpt_every_iters {args.ckpt_every_iters} must be >= 0")
    need(args.fused_adamw in ADAMW_CHOICES,
         f"--fused_adamw {args.fused_adamw!r}: choose {', '.join(ADAMW_CHOICES)}")


def save_config(args: argparse.Namespace, path: Path) -> None:
    values = {k: v for k, v in vars(args).items() if k != "config"}
    write_yaml(path, json.loads(json.dumps(values)))

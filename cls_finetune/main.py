"""Classification transfer: fine-tune, or linear-probe, a pretrained checkpoint on
a small dataset and report top-1 / top-5 on its official test split.

    python -m cls_finetune --config cls_configs/_base_/finetune.yaml cls_configs/datasets/cifar100.yaml \\
        --finetune output/pretrain/vit_tiny_early_dropout/weights.pth --output_dir output/cls/...
    bash tools/cls_finetune.sh 8 --config ...          # torchrun, one process per GPU

The recipe, checkpoints, exact resume and run record are the ones pretraining
uses (training/run.py); this file adds the datasets, a new head sized to the
dataset, the linear probe and the starting checkpoint's provenance. In the
logs, ``val_*`` is measured on the official test split.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import torch.nn as nn

from backbones.checkpoint import CheckpointError, load_pretrained, read_checkpoint, split_checkpoint
from backbones.errors import run_cli
from backbones.models import same_architecture
from training import distributed as D
from training.config import ConfigError
from training.data import EpochSampler, build_transforms, make_loaders
from training.run import RunContext, RunData, TrainingRun, build_timm_model
from training.state import latest_checkpoint, load_training_checkpoint

from .config import parse_args
from .datasets import build_splits
from .evaluation import MaskedBCEWithLogits, evaluate_transfer
from .probe import FeatureBatches, add_feature_norm, extract_features

__all__ = ["FinetuneRun", "freeze_backbone", "linear_probe_mode", "new_head", "run", "main"]


def resolve_model(args) -> None:
    """Fill ``--model`` from the starting checkpoint's meta (or from the run being
    resumed), and ``--model_kwargs``, when not given, from the same place as long
    as it records the same architecture (a depth-4 ViT-T export builds a depth-4 ViT-T)."""
    if args.model and args.model_kwargs:
        return
    if args.finetune:
        _, meta = split_checkpoint(read_checkpoint(args.finetune), args.finetune)
        arch = meta.get("arch")
        if not args.model and not arch:
            raise ConfigError(f"--model: not given, and --finetune {args.finetune} records no architecture "
                              "(e.g. the paper's release format): pass --model, e.g. --model vit_base")
        args.model = args.model or arch
        if arch and same_architecture(arch, args.model) and not args.model_kwargs:
            args.model_kwargs = dict(meta.get("model_kwargs") or {})
        return
    if args.model:
        return
    resume = latest_checkpoint(Path(args.output_dir)) if args.resume == "auto" else args.resume
    if resume:
        saved = load_training_checkpoint(resume)["args"]
        args.model, args.model_kwargs = saved["model"], args.model_kwargs or saved["model_kwargs"]
        return
    raise ConfigError("--finetune: name the pretrained checkpoint to transfer (weights.pth of tools/pretrain.sh "
                      "or a paper release), or --resume a classification run")


def classifier(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model).get_classifier()


def new_head(model: nn.Module, num_classes: int) -> None:
    """A new classifier for ``num_classes``, small at the start (MAE's linear-probe init)."""
    model.reset_classifier(num_classes)
    for m in classifier(model).modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


def freeze_backbone(model: nn.Module) -> None:
    """Linear probe: only the classifier trains. With no parameter of the backbone
    asking for gradients, autograd records nothing there: its forward costs no backward."""
    head = {id(p) for p in classifier(model).parameters()}
    for p in model.parameters():
        p.requires_grad = id(p) in head


def linear_probe_mode(model: nn.Module) -> None:
    """Frozen features: the backbone in eval mode (no dropout, no norm statistics updates)."""
    model.eval()
    classifier(model).train()


class FinetuneRun(TrainingRun):
    kind = "cls_finetune"
    resume_must_match = TrainingRun.resume_must_match + ("dataset", "linear_probe")

    def __init__(self, args):
        super().__init__(args)
        resolve_model(args)

    def build(self) -> RunData:
        args = self.args
        # Built without a head first: its normalisation decides the transforms, the
        # dataset decides the head.
        model = build_timm_model(args, num_classes=0)
        train_tf, test_tf = build_transforms(args, model)
        if self.cached:  # features of the training images are computed once, without augmentation
            train_tf = test_tf
        splits = build_splits(args.dataset, args.data_path, train_tf, test_tf, check_md5=args.check_md5)
        self.splits = splits
        if args.num_classes and args.num_classes != len(splits.classes):
            raise ConfigError(f"--num_classes {args.num_classes}: {splits.description} has "
                              f"{len(splits.classes)} classes")
        new_head(model, len(splits.classes))
        if args.linear_probe:
            if args.probe_bn:
                add_feature_norm(model)
            freeze_backbone(model)
        train_loader, train_sampler, test_loader = make_loaders(args, splits.train, splits.test)
        return RunData(model, splits.classes, splits.train, train_loader, train_sampler, test_loader,
                       description=splits.description,
                       record={"dataset": args.dataset, "data_path": str(Path(args.data_path).resolve()),
                               "mode": self.mode, "test_images": len(splits.test),
                               "probe_features": args.probe_features if args.linear_probe else None,
                               "probe_bn": args.probe_bn if args.linear_probe else None})

    def initial_weights(self, ctx: RunContext) -> Optional[dict]:
        args = self.args
        if not args.finetune:
            raise ConfigError("--finetune: name the pretrained checkpoint to transfer (weights.pth of "
                              "tools/pretrain.sh or a paper release)")
        # --eval measures a fine-tuned classifier: then the head must come from the file.
        report = load_pretrained(ctx.model, args.finetune, keep_head=args.eval, expected_arch=args.model)
        if args.eval and report.skipped_head:
            raise CheckpointError(f"--eval: {args.finetune} holds no classifier for the "
                                  f"{len(ctx.data.classes)} classes of {ctx.data.description}")
        return report.provenance

    def train_mode(self, model: nn.Module) -> None:
        if self.cached:  # the classifier alone runs
            model.train()
            return
        (linear_probe_mode if self.args.linear_probe else nn.Module.train)(model)

    @property
    def cached(self) -> bool:
        return bool(self.args.linear_probe and self.args.probe_features == "cached")

    def validation_metrics(self, model: nn.Module, ctx: RunContext) -> dict:
        """Top-1/top-5, mean per-class accuracy, or the multi-label metrics (cls_finetune/evaluation.py)."""
        return evaluate_transfer(model, ctx.data.val_loader, ctx.device, ctx.amp_dtype, self.splits.multilabel)

    def loss_function(self, ctx: RunContext) -> Optional[nn.Module]:
        # VOC 2007: a sigmoid per class (binary cross-entropy), difficult-only labels left out
        return MaskedBCEWithLogits() if self.splits.multilabel else None

    def forward_module(self, ctx: RunContext) -> nn.Module:
        return classifier(ctx.model) if self.cached else ctx.model

    def train(self, ctx: RunContext) -> dict:
        """With ``--probe_features cached``: the backbone's features of both splits
        first (every process computes all of them), then the head's epochs on them.
        The features' time counts in ``wall_time_s``."""
        if not self.cached:
            return super().train(ctx)
        args, t0 = self.args, time.time()
        train = extract_features(ctx.model, self.splits.train, args.batch_size, args.num_workers, ctx.device,
                                 ctx.amp_dtype)
        test = extract_features(ctx.model, self.splits.test, args.batch_size, args.num_workers, ctx.device,
                                ctx.amp_dtype)
        test_sampler = EpochSampler(len(self.splits.test), shuffle=False, seed=args.seed, rank=D.rank(),
                                    world_size=D.world_size())
        ctx.data.train_loader = FeatureBatches(*train, ctx.data.train_sampler, args.batch_size, drop_last=True)
        ctx.data.val_loader = FeatureBatches(*test, test_sampler, args.batch_size, drop_last=False)
        feature_seconds = time.time() - t0
        out = super().train(ctx)
        return {**out, "wall_time_s": out["wall_time_s"] + feature_seconds}

    def summary(self, ctx: RunContext) -> dict:
        start = ctx.start_checkpoint or {}
        return {"dataset": self.args.dataset, "mode": self.mode,
                "probe_features": self.args.probe_features if self.args.linear_probe else None,
                "pretrain_method": start.get("pretrain", {}).get("method"), "pretrain_sha256": start.get("sha256")}

    @property
    def mode(self) -> str:
        return "linear_probe" if self.args.linear_probe else "finetune"


def run(args) -> dict:
    if args.fixed_feature:
        from .fixed_feature import FixedFeatureRun  # a FinetuneRun: imported here, after this module
        return FixedFeatureRun(args).run()
    return FinetuneRun(args).run()


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

"""One training run from parsed flags to a finished output dir: the part that
pretraining (pretrain/main.py) and classification transfer (cls_finetune/)
share. A kind of run subclasses ``TrainingRun`` and says how to build its model
and data and where its starting weights come from; the recipe (AdamW, cosine
lr/wd with warmup, drop schedule, mixup/cutmix, label smoothing, EMA,
accumulation, AMP, DDP), checkpoints, exact resume and the run record are here.

Output dir (stable; README.md documents every key): ``config.yaml``,
``run.json``, ``log_iter.jsonl``, ``log.jsonl``, ``metrics.json``,
``checkpoint-last.pth``, ``checkpoint-best.pth``, ``weights.pth``
(+ ``weights_ema.pth``), ``tensorboard/``; ``config_eval.yaml`` and
``metrics_eval.json`` for ``--eval``.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import timm
import torch
import torch.nn as nn
from timm.data import Mixup, create_transform, resolve_data_config
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader, Dataset

from backbones import DropPlan, DropSites, create_model_with_drop
from backbones.checkpoint import EXPORT_FORMAT, CheckpointError, file_sha256, run_meta

from . import distributed as D
from .config import ConfigError, save_config
from .data import DataError, EpochSampler, SeededDataset
from .engine import NonFiniteLossError, Trainer, amp_dtype_for, evaluate, param_groups
from .logger import RunLogger, trim_jsonl
from .schedules import CosineSchedule
from .state import (atomic_save, atomic_write_text, gather_rng_states, latest_checkpoint, load_training_checkpoint,
                    set_rng_state)

__all__ = ["RunData", "TrainingRun", "build_timm_model", "build_transforms", "make_loaders"]


def build_timm_model(args, num_classes: int) -> nn.Module:
    """The model of ``--model``/``--model_kwargs`` at ``--input_size`` with its drop
    sites built at the peak rates of the schedule."""
    kwargs = dict(args.model_kwargs)
    kwargs.setdefault("num_classes", num_classes)
    try:
        return create_model_with_drop(args.model, dropout=args.dropout, drop_path=args.drop_path,
                                      img_size=args.input_size, **kwargs)
    except TypeError as exc:
        if "img_size" not in str(exc):
            raise ConfigError(f"--model {args.model} / --model_kwargs: {exc}") from None
    try:  # convolutional models take any input size and have no img_size argument
        return create_model_with_drop(args.model, dropout=args.dropout, drop_path=args.drop_path, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"--model {args.model} / --model_kwargs: {exc}") from None


def build_transforms(args, model: nn.Module):
    """(train, eval) transforms of timm for the flags' augmentation, with the
    model's normalisation."""
    data_cfg = resolve_data_config({"input_size": (3, args.input_size, args.input_size),
                                    "crop_pct": args.crop_pct}, model=model)
    train_tf = create_transform(
        args.input_size, is_training=True, auto_augment=None if args.aa == "none" else args.aa,
        re_prob=args.reprob, re_mode="pixel", re_count=1, interpolation="bicubic",
        scale=tuple(args.scale), color_jitter=args.color_jitter,
        mean=data_cfg["mean"], std=data_cfg["std"])
    val_tf = create_transform(args.input_size, is_training=False, interpolation="bicubic",
                              crop_pct=args.crop_pct, mean=data_cfg["mean"], std=data_cfg["std"])
    return train_tf, val_tf


def make_loaders(args, train: Dataset, val: Dataset):
    """(train loader, its sampler, val loader): per-sample seeded augmentation
    (exact resume), sharded over the processes."""
    world, rank = D.world_size(), D.rank()
    train_sampler = EpochSampler(len(train), shuffle=True, seed=args.seed, rank=rank, world_size=world)
    val_sampler = EpochSampler(len(val), shuffle=False, seed=args.seed, rank=rank, world_size=world)
    common = dict(num_workers=args.num_workers, pin_memory=torch.cuda.is_available(),
                  # Own generator: creating an iterator must not draw from the global RNG.
                  generator=torch.Generator())
    train_loader = DataLoader(SeededDataset(train), batch_size=args.batch_size, sampler=train_sampler,
                              drop_last=True, **common)
    val_loader = DataLoader(SeededDataset(val), batch_size=args.batch_size, sampler=val_sampler, **common)
    return train_loader, train_sampler, val_loader


@dataclass
class RunData:
    model: nn.Module
    classes: List[str]
    train_set: object               # anything with len(); run.json records its size
    train_loader: object
    train_sampler: EpochSampler
    val_loader: object
    description: str                # e.g. "cifar100 (train / test)", for messages


class TrainingRun:
    kind = "pretrain"
    # Flags a resumed run must share with the checkpoint it resumes.
    resume_must_match = ("model", "batch_size", "update_freq", "epochs")

    def __init__(self, args):
        self.args = args

    # ---- what a kind of run provides ---------------------------------------------------
    def build(self) -> RunData:
        raise NotImplementedError

    def initial_weights(self, model: nn.Module) -> Optional[dict]:
        """Load the starting weights of a new run; return their provenance (None: from scratch)."""
        return None

    def param_groups(self, model: nn.Module) -> list:
        return param_groups(model, self.args.weight_decay, self.args.layer_decay)

    def train_mode(self, model: nn.Module) -> None:
        model.train()

    def record(self) -> dict:
        """Fields run.json adds for this kind of run."""
        return {}

    def summary(self) -> dict:
        """Fields metrics.json adds for this kind of run."""
        return {}

    def update_hook(self, next_step: int) -> Optional[Callable[[int], None]]:
        """Called after every update with the number of the next one (e.g. diagnostics)."""
        return None

    # ---- the run ------------------------------------------------------------------------
    def run(self) -> dict:
        args = self.args
        device = self.device = D.pick_device()
        D.init_distributed(device)
        out = self.out = Path(args.output_dir)
        if D.is_main():
            out.mkdir(parents=True, exist_ok=True)
        D.barrier()
        random.seed(args.seed + D.rank())
        np.random.seed(args.seed + D.rank())
        torch.manual_seed(args.seed + D.rank())

        data = self.data = self.build()
        model, classes = data.model, data.classes
        self.model = model
        per_update = args.batch_size * args.update_freq
        iters_per_epoch = len(data.train_sampler) // per_update
        if iters_per_epoch == 0:
            raise DataError(f"{data.description}: {len(data.train_set)} training images are fewer than one "
                            f"update (--batch_size {args.batch_size} x --update_freq {args.update_freq} x "
                            f"{D.world_size()} processes)")
        if (args.mixup > 0 or args.cutmix > 0) and args.batch_size % 2:
            raise ConfigError(f"--batch_size {args.batch_size} must be even with mixup/cutmix")
        try:
            plan = self.plan = DropPlan.build(
                dropout=args.dropout, drop_path=args.drop_path, drop_mode=args.drop_mode,
                drop_schedule=args.drop_schedule, cutoff_epoch=args.cutoff_epoch, epochs=args.epochs,
                iters_per_epoch=iters_per_epoch)
        except ValueError as exc:
            raise ConfigError(f"drop schedule: {exc}") from None
        sites = self.sites = DropSites(model, args.model)
        model.to(device)

        # ---- resume / initial weights (before EMA, which copies the model) ----------
        next_step, best_top1, start_checkpoint = 0, -1.0, None
        resume = latest_checkpoint(out) if args.resume == "auto" else (Path(args.resume) if args.resume else None)
        if resume is None and not args.eval and latest_checkpoint(out) is not None:
            raise ConfigError(f"--output_dir {out} already holds a run (checkpoint-last.pth): pass --resume auto "
                              "to continue it, or choose another --output_dir")
        ckpt = self._check_resume(resume, iters_per_epoch, len(classes)) if resume is not None else None
        if ckpt is None:
            start_checkpoint = self.initial_weights(model)
        ema = ModelEmaV3(model, decay=args.model_ema_decay) if args.model_ema else None

        total_iters = args.epochs * iters_per_epoch
        try:
            groups = self.param_groups(model)
        except ValueError as exc:
            raise ConfigError(f"--model {args.model}: {exc}") from None
        optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=tuple(args.opt_betas))
        amp_dtype = amp_dtype_for(args.amp, device)
        scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
        lr_schedule = CosineSchedule(args.lr, args.min_lr, total_iters,
                                     warmup_iters=int(round(args.warmup_epochs * iters_per_epoch)))
        wd_end = args.weight_decay if args.weight_decay_end is None else args.weight_decay_end
        wd_schedule = CosineSchedule(args.weight_decay, wd_end, total_iters)
        mixup_fn = None
        if args.mixup > 0 or args.cutmix > 0:
            mixup_fn = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, prob=args.mixup_prob,
                             switch_prob=args.mixup_switch_prob, label_smoothing=args.smoothing,
                             num_classes=len(classes))
            criterion = SoftTargetCrossEntropy()
        elif args.smoothing > 0:
            criterion = LabelSmoothingCrossEntropy(smoothing=args.smoothing)
        else:
            criterion = nn.CrossEntropyLoss()

        if ckpt is not None:  # the model's weights were loaded by _check_resume
            optimizer.load_state_dict(ckpt["optimizer"])
            if scaler is not None and ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            if ema is not None and ckpt.get("ema"):
                ema.load_state_dict(ckpt["ema"])
            rngs = ckpt["rng"]
            if len(rngs) == D.world_size():
                set_rng_state(rngs[D.rank()])
            next_step, best_top1 = ckpt["next_step"], ckpt.get("best_top1", -1.0)
            saved_run = ckpt.get("start_checkpoint")
            start_checkpoint = {"path": str(resume.resolve()), "sha256": file_sha256(resume),
                                "next_step": next_step, "run_started_from": saved_run}
            if D.is_main():  # forget what a killed run logged after this checkpoint
                trim_jsonl(out / "log_iter.jsonl", lambda r: r["step"] < next_step)
                trim_jsonl(out / "log.jsonl", lambda r: r["epoch"] < next_step // iters_per_epoch)
                trim_jsonl(out / "diagnostics.jsonl", lambda r: r["step"] <= next_step)
        self.resuming = ckpt is not None
        # What the run started from (for a resumed run: what its first part started from).
        origin = self.origin = (ckpt or {}).get("start_checkpoint", start_checkpoint)

        if args.eval:
            metrics = evaluate(model, data.val_loader, device, amp_dtype)
            if D.is_main():  # beside, not over, the record of a training run in the same dir
                print(json.dumps(metrics))
                save_config(args, out / "config_eval.yaml")
                (out / "metrics_eval.json").write_text(json.dumps(
                    {"kind": self.kind, "weights": start_checkpoint, "val": metrics, **self.summary()}, indent=1))
            return metrics

        ddp_model = model
        if D.world_size() > 1:
            ddp_model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)

        def save(name: str, next_step_: int) -> None:
            rngs = gather_rng_states()  # collective: every rank takes part
            if not D.is_main():
                return
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise NonFiniteLossError(f"weights became non-finite before update {next_step_}: training "
                                         f"stopped without overwriting {out / name}")
            atomic_save({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler else None,
                "ema": ema.state_dict() if ema is not None else None,
                "epoch": next_step_ // iters_per_epoch, "step_in_epoch": next_step_ % iters_per_epoch,
                "next_step": next_step_, "iters_per_epoch": iters_per_epoch, "num_classes": len(classes),
                "rng": rngs, "args": dict(vars(args)), "kind": self.kind, "best_top1": best_top1,
                "start_checkpoint": origin,
            }, out / name)

        hook = self.update_hook(next_step)

        def on_update(next_step_: int) -> None:
            if hook is not None:
                hook(next_step_)
            if args.ckpt_every_iters and next_step_ % args.ckpt_every_iters == 0 \
                    and next_step_ % iters_per_epoch != 0:
                save("checkpoint-last.pth", next_step_)

        logger = RunLogger(out, tensorboard=args.tensorboard)
        trainer = Trainer(ddp_model, optimizer, criterion, sites, plan, lr_schedule, wd_schedule,
                          iters_per_epoch, args.update_freq, device, logger, amp_dtype=amp_dtype, scaler=scaler,
                          ema=ema, mixup_fn=mixup_fn, clip_grad=args.clip_grad, print_freq=args.print_freq,
                          on_update=on_update, train_mode=self.train_mode)
        if D.is_main():
            save_config(args, out / "config.yaml")
            (out / "run.json").write_text(json.dumps({
                "kind": self.kind, "model": args.model, "method": plan.describe(),
                "init": "resume" if resume else ("weights" if start_checkpoint else "scratch"),
                "start_checkpoint": origin, "resumed_from": start_checkpoint if resume else None,
                **self.record(), "classes": list(classes), "train_images": len(data.train_set),
                "iters_per_epoch": iters_per_epoch, "total_iters": total_iters, "world_size": D.world_size(),
                "device": str(device), "amp": str(amp_dtype), "versions": {
                    "torch": torch.__version__, "timm": timm.__version__}}, indent=1))
        logger.info(f"{self.kind}: {args.model} ({plan.describe()}) on {data.description}, "
                    f"{len(data.train_set)} images, {len(classes)} classes; {iters_per_epoch} updates/epoch x "
                    f"{args.epochs} epochs on {device}" + (f", resuming at update {next_step}" if resume else ""))

        t0 = time.time()
        val = ema_val = None
        train_loss = float("nan")
        for epoch in range(next_step // iters_per_epoch, args.epochs):
            start = next_step - epoch * iters_per_epoch if epoch == next_step // iters_per_epoch else 0
            data.train_sampler.set_epoch(epoch, start=start * args.update_freq * args.batch_size)
            train_loss = trainer.train_one_epoch(data.train_loader, epoch, start_step=start)
            next_step = (epoch + 1) * iters_per_epoch
            val = evaluate(model, data.val_loader, device, amp_dtype)
            rec = {"epoch": epoch, "step": next_step, "train_loss": train_loss,
                   **{f"val_{k}": v for k, v in val.items() if k != "n"}, "time": time.time() - t0}
            if ema is not None:
                ema_val = evaluate(ema.module, data.val_loader, device, amp_dtype)
                rec.update({f"ema_val_{k}": v for k, v in ema_val.items() if k != "n"})
            logger.epoch(rec)
            logger.info(f"epoch {epoch}: train loss {train_loss:.4f}, val top-1 {val['top1']:.2f}"
                        + (f", EMA top-1 {ema_val['top1']:.2f}" if ema_val else ""))
            is_best = val["top1"] > best_top1
            best_top1 = max(best_top1, val["top1"])
            save("checkpoint-last.pth", next_step)
            if is_best:
                save("checkpoint-best.pth", next_step)

        if val is None:  # resumed a run that had already finished: evaluate what it left
            val = evaluate(model, data.val_loader, device, amp_dtype)
            if ema is not None:
                ema_val = evaluate(ema.module, data.val_loader, device, amp_dtype)
        meta = {"format": EXPORT_FORMAT, "kind": self.kind, **run_meta(vars(args), plan.describe()),
                "timm_name": type(model).__name__, "num_classes": len(classes), "top1": val["top1"] if val else None}
        metrics = {"kind": self.kind, "model": args.model, "method": plan.describe(), **self.summary(),
                   "epochs": args.epochs, "total_iters": total_iters, "final": val, "best_top1": best_top1,
                   "ema_final": ema_val, "train_loss_last_epoch": train_loss, "wall_time_s": time.time() - t0}
        if D.is_main():
            atomic_save({"model": model.state_dict(), "meta": {**meta, "ema": False}}, out / "weights.pth")
            if ema is not None:
                atomic_save({"model": ema.module.state_dict(),
                             "meta": {**meta, "ema": True, "top1": ema_val["top1"] if ema_val else None}},
                            out / "weights_ema.pth")
            atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
        logger.close()
        return metrics

    def _check_resume(self, resume: Path, iters_per_epoch: int, num_classes: int) -> dict:
        args = self.args
        ckpt = load_training_checkpoint(resume)
        saved = ckpt["args"]
        for key in self.resume_must_match:
            if saved.get(key) != getattr(args, key):
                raise ConfigError(f"--resume {resume}: the checkpoint was trained with {key}={saved.get(key)!r}, "
                                  f"this run has {key}={getattr(args, key)!r}")
        saved_classes = ckpt.get("num_classes")
        if saved_classes is not None and saved_classes != num_classes:
            raise ConfigError(f"--resume {resume}: the checkpoint's classifier has {saved_classes} classes, "
                              f"{self.data.description} has {num_classes}")
        started = (ckpt.get("start_checkpoint") or {}).get("sha256")
        if args.finetune and not args.eval:  # a rerun after its starting weights changed must not mix the two
            if not Path(args.finetune).is_file():
                raise CheckpointError(f"--finetune {args.finetune} does not exist (resuming {resume}, which "
                                      "records the weights it started from; omit --finetune to continue it)")
            if file_sha256(args.finetune) != started:
                recorded = f"weights with sha256 {started[:12]}..." if started else "no weights (from scratch)"
                raise ConfigError(f"--resume {resume}: the run started from {recorded}, not from --finetune "
                                  f"{args.finetune} (changed since, or another file); start a new --output_dir "
                                  "for these weights")
        if ckpt["iters_per_epoch"] != iters_per_epoch:
            raise ConfigError(f"--resume {resume}: {ckpt['iters_per_epoch']} updates per epoch in the checkpoint, "
                              f"{iters_per_epoch} now (data or number of processes changed)")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"--resume {resume}: weights do not fit {args.model}: "
                                  f"{str(exc).splitlines()[0]}") from None
        return ckpt

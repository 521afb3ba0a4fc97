"""ImageNet pretraining with per-iteration dropout / stochastic-depth schedules.

    python -m pretrain --model vit_tiny --dropout 0.1 --drop_mode early --cutoff_epoch 50 ...
    torchrun --nproc_per_node 8 -m pretrain --config my_run.yaml

Output dir (stable, documented in README.md): ``config.yaml``, ``run.json``,
``log_iter.jsonl``, ``log.jsonl``, ``metrics.json``, ``checkpoint-last.pth``,
``checkpoint-best.pth``, ``weights.pth`` (+ ``weights_ema.pth``), ``tensorboard/``.
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import timm
import torch
import torch.nn as nn
from timm.data import Mixup, create_transform, resolve_data_config
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader

from backbones import DropPlan, DropSites, NoDropSitesError, UnknownModelError, create_model_with_drop
from backbones.checkpoint import EXPORT_FORMAT, CheckpointError, file_sha256, load_pretrained

from . import distributed as D
from .config import ConfigError, parse_args, save_config
from .data import DataError, EpochSampler, SafeImageFolder, SeededDataset, check_image_folder
from .engine import NonFiniteLossError, Trainer, amp_dtype_for, evaluate, param_groups
from .logger import RunLogger, trim_jsonl
from .schedules import CosineSchedule
from .state import (atomic_save, gather_rng_states, latest_checkpoint, load_training_checkpoint,
                    set_rng_state)

USER_ERRORS = (ConfigError, DataError, CheckpointError, NoDropSitesError, UnknownModelError,
               NonFiniteLossError)


def build_model(args, num_classes: int) -> nn.Module:
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


def build_loaders(args, model: nn.Module):
    root = Path(args.data_path)
    data_cfg = resolve_data_config({"input_size": (3, args.input_size, args.input_size),
                                    "crop_pct": args.crop_pct}, model=model)
    train_tf = create_transform(
        args.input_size, is_training=True, auto_augment=None if args.aa == "none" else args.aa,
        re_prob=args.reprob, re_mode="pixel", re_count=1, interpolation="bicubic",
        scale=tuple(args.scale), color_jitter=args.color_jitter,
        mean=data_cfg["mean"], std=data_cfg["std"])
    val_tf = create_transform(args.input_size, is_training=False, interpolation="bicubic",
                              crop_pct=args.crop_pct, mean=data_cfg["mean"], std=data_cfg["std"])
    train = SafeImageFolder(root / "train", train_tf)
    val = SafeImageFolder(root / "val", val_tf)
    if train.classes != val.classes:
        extra = sorted(set(train.classes) ^ set(val.classes))
        raise DataError(f"--data_path {root}: train/ and val/ have different class folders "
                        f"(only in one of them: {', '.join(extra[:10])})")
    world, rank = D.world_size(), D.rank()
    train_sampler = EpochSampler(len(train), shuffle=True, seed=args.seed, rank=rank, world_size=world)
    val_sampler = EpochSampler(len(val), shuffle=False, seed=args.seed, rank=rank, world_size=world)
    common = dict(num_workers=args.num_workers, pin_memory=torch.cuda.is_available(),
                  # Own generator: creating an iterator must not draw from the global RNG.
                  generator=torch.Generator())
    train_loader = DataLoader(SeededDataset(train), batch_size=args.batch_size, sampler=train_sampler,
                              drop_last=True, **common)
    val_loader = DataLoader(SeededDataset(val), batch_size=args.batch_size, sampler=val_sampler, **common)
    return train, train_loader, train_sampler, val_loader, val_tf


def diagnostic_batches(args, eval_tf):
    """(mini-batches compared for GDV/GDE, all batches of the whole-dataset
    gradient): training images without augmentation, a fixed subset and order."""
    from torch.utils.data import Subset
    data = SafeImageFolder(Path(args.data_path) / "train", eval_tf)
    g = torch.Generator().manual_seed(args.seed)
    n = len(data) if not args.diag_samples else min(args.diag_samples, len(data))
    subset = Subset(data, torch.randperm(len(data), generator=g)[:n].tolist())
    batches = list(DataLoader(subset, batch_size=args.batch_size, num_workers=args.num_workers,
                              generator=torch.Generator()))  # leaves the global RNG alone
    if len(batches) < args.diag_batches:
        raise ConfigError(f"--diag_batches {args.diag_batches}: only {len(batches)} batches of "
                          f"--batch_size {args.batch_size} in the --diag_samples {n} images")
    return batches[:args.diag_batches], batches


def make_diagnostics(args, model: nn.Module, sites: DropSites, eval_tf, out: Path, device, resuming: bool,
                     plan: DropPlan):
    """A function ``diagnose(step)`` that measures the paper's diagnostics after
    ``step`` updates, with the drop rates of update ``step`` (the next update
    sets the same), and appends them to diagnostics.jsonl; None when off or
    not rank 0."""
    if not args.diag_every or not D.is_main():
        return None
    from .diagnostics import measure
    init_path = out / "init_weights.pth"
    if not resuming or not init_path.is_file():
        atomic_save({k: v.detach().cpu().clone() for k, v in model.named_parameters()}, init_path)
    initial = torch.load(init_path, map_location="cpu", weights_only=True)
    minibatches, batches = diagnostic_batches(args, eval_tf)
    criterion = nn.CrossEntropyLoss()

    def diagnose(step: int) -> None:
        dropout, drop_path = plan(step)
        sites.apply(dropout, drop_path)
        rec = measure(model, criterion, minibatches, batches, device, initial=initial, seed=args.seed)
        rec = {"step": step, "epoch": step / plan.dropout.iters_per_epoch,
               "dropout": dropout, "drop_path": drop_path, **rec}
        with open(out / "diagnostics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    return diagnose


def export_weights(model: nn.Module, path: Path, meta: dict) -> None:
    atomic_save({"model": model.state_dict(), "meta": meta}, path)


def run(args) -> dict:
    device = D.pick_device()
    D.init_distributed(device)
    out = Path(args.output_dir)
    if D.is_main():
        out.mkdir(parents=True, exist_ok=True)
    D.barrier()
    random.seed(args.seed + D.rank())
    np.random.seed(args.seed + D.rank())
    torch.manual_seed(args.seed + D.rank())

    # The model is needed for its data config; build it before the loaders, with
    # the class count read off the train folder.
    classes = check_image_folder(Path(args.data_path) / "train")
    model = build_model(args, len(classes))
    train_set, train_loader, train_sampler, val_loader, val_tf = build_loaders(args, model)

    per_update = args.batch_size * args.update_freq
    iters_per_epoch = len(train_sampler) // per_update
    if iters_per_epoch == 0:
        raise DataError(f"--data_path {args.data_path}: {len(train_set)} training images are fewer than one "
                        f"update (--batch_size {args.batch_size} x --update_freq {args.update_freq} x "
                        f"{D.world_size()} processes)")
    if (args.mixup > 0 or args.cutmix > 0) and args.batch_size % 2:
        raise ConfigError(f"--batch_size {args.batch_size} must be even with mixup/cutmix")
    try:
        plan = DropPlan.build(dropout=args.dropout, drop_path=args.drop_path, drop_mode=args.drop_mode,
                              drop_schedule=args.drop_schedule, cutoff_epoch=args.cutoff_epoch,
                              epochs=args.epochs, iters_per_epoch=iters_per_epoch)
    except ValueError as exc:
        raise ConfigError(f"drop schedule: {exc}") from None
    sites = DropSites(model, args.model)
    model.to(device)
    ema = ModelEmaV3(model, decay=args.model_ema_decay) if args.model_ema else None

    total_iters = args.epochs * iters_per_epoch
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr,
                                  betas=tuple(args.opt_betas))
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

    # ---- resume / initial weights -------------------------------------------------
    next_step, best_top1, resumed_from = 0, -1.0, None
    resume = latest_checkpoint(out) if args.resume == "auto" else (Path(args.resume) if args.resume else None)
    if resume is None and not args.eval and latest_checkpoint(out) is not None:
        raise ConfigError(f"--output_dir {out} already holds a run (checkpoint-last.pth): pass --resume auto "
                          "to continue it, or choose another --output_dir")
    if resume is not None:
        ckpt = load_training_checkpoint(resume)
        saved = ckpt["args"]
        for key in ("model", "batch_size", "update_freq", "epochs"):
            if saved.get(key) != getattr(args, key):
                raise ConfigError(f"--resume {resume}: the checkpoint was trained with {key}={saved.get(key)!r}, "
                                  f"this run has {key}={getattr(args, key)!r}")
        if ckpt["iters_per_epoch"] != iters_per_epoch:
            raise ConfigError(f"--resume {resume}: {ckpt['iters_per_epoch']} updates per epoch in the checkpoint, "
                              f"{iters_per_epoch} now (data or number of processes changed)")
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"--resume {resume}: weights do not fit {args.model}: "
                                  f"{str(exc).splitlines()[0]}") from None
        optimizer.load_state_dict(ckpt["optimizer"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        rngs = ckpt["rng"]
        if len(rngs) == D.world_size():
            set_rng_state(rngs[D.rank()])
        next_step, best_top1 = ckpt["next_step"], ckpt.get("best_top1", -1.0)
        resumed_from = {"path": str(resume.resolve()), "sha256": file_sha256(resume), "next_step": next_step}
        if D.is_main():  # forget what a killed run logged after this checkpoint
            trim_jsonl(out / "log_iter.jsonl", lambda r: r["step"] < next_step)
            trim_jsonl(out / "log.jsonl", lambda r: r["epoch"] < next_step // iters_per_epoch)
            trim_jsonl(out / "diagnostics.jsonl", lambda r: r["step"] <= next_step)
    elif args.finetune:
        report = load_pretrained(model, args.finetune, keep_head=True, expected_arch=args.model)
        resumed_from = {"path": report.path, "sha256": report.sha256, "pretrain": report.meta}

    if args.eval:
        metrics = evaluate(model, val_loader, device, amp_dtype)
        if D.is_main():
            print(json.dumps(metrics))
            (out / "metrics_eval.json").write_text(json.dumps({"weights": resumed_from, "val": metrics}, indent=1))
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
            "next_step": next_step_, "iters_per_epoch": iters_per_epoch, "rng": rngs,
            "args": {k: v for k, v in vars(args).items()}, "best_top1": best_top1,
        }, out / name)

    diagnose = make_diagnostics(args, model, sites, val_tf, out, device, resume is not None, plan)

    def on_update(next_step_: int) -> None:
        if diagnose and next_step_ % args.diag_every == 0:
            diagnose(next_step_)
        if args.ckpt_every_iters and next_step_ % args.ckpt_every_iters == 0 \
                and next_step_ % iters_per_epoch != 0:
            save("checkpoint-last.pth", next_step_)

    logger = RunLogger(out, tensorboard=args.tensorboard)
    trainer = Trainer(ddp_model, optimizer, criterion, sites, plan, lr_schedule, wd_schedule,
                      iters_per_epoch, args.update_freq, device, logger, amp_dtype=amp_dtype, scaler=scaler,
                      ema=ema, mixup_fn=mixup_fn, clip_grad=args.clip_grad, print_freq=args.print_freq,
                      on_update=on_update)
    if D.is_main():
        save_config(args, out / "config.yaml")
        (out / "run.json").write_text(json.dumps({
            "kind": "pretrain", "model": args.model, "method": plan.describe(),
            "init": "resume" if resume else ("weights" if args.finetune else "scratch"),
            "start_checkpoint": resumed_from, "data_path": str(Path(args.data_path).resolve()),
            "classes": train_set.classes, "train_images": len(train_set),
            "iters_per_epoch": iters_per_epoch, "total_iters": total_iters, "world_size": D.world_size(),
            "device": str(device), "amp": str(amp_dtype), "versions": {
                "torch": torch.__version__, "timm": timm.__version__}}, indent=1))
    logger.info(f"pretraining {args.model} ({plan.describe()}) on {len(train_set)} images, "
                f"{len(classes)} classes; {iters_per_epoch} updates/epoch x {args.epochs} epochs on {device}"
                + (f", resuming at update {next_step}" if resume else ""))

    if diagnose and next_step == 0:
        diagnose(0)
    t0 = time.time()
    val = ema_val = None
    train_loss = float("nan")
    for epoch in range(next_step // iters_per_epoch, args.epochs):
        start = next_step - epoch * iters_per_epoch if epoch == next_step // iters_per_epoch else 0
        train_sampler.set_epoch(epoch, start=start * args.update_freq * args.batch_size)
        train_loss = trainer.train_one_epoch(train_loader, epoch, start_step=start)
        next_step = (epoch + 1) * iters_per_epoch
        val = evaluate(model, val_loader, device, amp_dtype)
        rec = {"epoch": epoch, "step": next_step, "train_loss": train_loss,
               **{f"val_{k}": v for k, v in val.items() if k != "n"}, "time": time.time() - t0}
        if ema is not None:
            ema_val = evaluate(ema.module, val_loader, device, amp_dtype)
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
        val = evaluate(model, val_loader, device, amp_dtype)
        if ema is not None:
            ema_val = evaluate(ema.module, val_loader, device, amp_dtype)
    meta = {"format": EXPORT_FORMAT, "arch": args.model, "timm_name": type(model).__name__,
            "num_classes": len(classes), "input_size": args.input_size, "model_kwargs": args.model_kwargs,
            "dropout": args.dropout, "drop_path": args.drop_path, "drop_mode": args.drop_mode,
            "drop_schedule": args.drop_schedule, "cutoff_epoch": args.cutoff_epoch,
            "method": plan.describe(), "epochs": args.epochs, "seed": args.seed,
            "top1": val["top1"] if val else None}
    metrics = {"model": args.model, "method": plan.describe(), "epochs": args.epochs,
               "total_iters": total_iters, "final": val, "best_top1": best_top1, "ema_final": ema_val,
               "train_loss_last_epoch": train_loss, "wall_time_s": time.time() - t0}
    if D.is_main():
        export_weights(model, out / "weights.pth", {**meta, "ema": False})
        if ema is not None:
            export_weights(ema.module, out / "weights_ema.pth",
                           {**meta, "ema": True, "top1": ema_val["top1"] if ema_val else None})
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    logger.close()
    return metrics


def main(argv: Optional[List[str]] = None) -> int:
    try:
        run(parse_args(argv))
        return 0
    except USER_ERRORS as exc:
        # Errors raised in a DataLoader worker arrive wrapped with its traceback: keep the message.
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        msg = msg.split("Error: ", 1)[-1] if msg.startswith(("pretrain.", "backbones.")) else msg
        print(f"error: {msg}", file=sys.stderr)
        return 2
    finally:
        D.cleanup()


if __name__ == "__main__":
    sys.exit(main())

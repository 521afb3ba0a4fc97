"""One training run from parsed flags to a finished output dir: what pretraining
(``pretrain/``) and classification transfer (``cls_finetune/``) share.

A kind of run subclasses ``TrainingRun`` and says how to build its model and
data and where its starting weights come from; the recipe (AdamW, cosine lr/wd
with warmup, drop schedule, mixup/cutmix, label smoothing, EMA, accumulation,
AMP, DDP), checkpoints, exact resume and the run record are here. ``run()`` is a
sequence of named steps that pass one ``RunContext`` along:

    setup -> restore -> (evaluate_only) -> write_record -> train -> export

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import timm
import torch
import torch.nn as nn
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.utils import ModelEmaV3

from backbones import DropPlan, DropSites, create_model_with_drop
from backbones.checkpoint import EXPORT_FORMAT, CheckpointError, model_normalization, run_meta
from common.files import file_sha256, trim_jsonl
from common.names import (
    CHECKPOINT_BEST,
    CHECKPOINT_LAST,
    CONFIG,
    DIAGNOSTICS,
    EPOCH_LOG,
    EVAL_CONFIG,
    ITER_LOG,
    WEIGHTS,
    WEIGHTS_EMA,
)
from records import write_eval_metrics, write_final_metrics, write_run_info

from . import distributed as D
from .config import ConfigError, save_config
from .data import DataError, EpochSampler, release_workers
from .engine import NonFiniteLossError, Trainer, amp_dtype_for, evaluate, param_groups
from .fast_paths import adamw, compile_model, to_channels_last
from .logger import RunLogger
from .schedules import CosineSchedule
from .state import (
    atomic_duplicate,
    atomic_save,
    gather_rng_states,
    latest_checkpoint,
    load_training_checkpoint,
    set_rng_state,
)

__all__ = ["CheckpointSaver", "RunContext", "RunData", "TrainingRun", "build_timm_model"]


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


@dataclass
class RunData:
    """What a kind of run builds: the model (with its head) and the data."""
    model: nn.Module
    classes: List[str]
    train_set: object               # anything with len(); run.json records its size
    train_loader: object
    train_sampler: EpochSampler
    val_loader: object
    description: str                # e.g. "cifar100 (train / test)", for messages
    record: dict = field(default_factory=dict)  # extra fields for run.json


@dataclass
class RunContext:
    """The state of one run, filled in step by step; every hook receives it."""
    args: object
    kind: str
    device: torch.device
    out: Path
    data: RunData
    plan: DropPlan
    sites: DropSites
    iters_per_epoch: int
    # restore(): where the run stands and what it started from
    next_step: int = 0
    best_top1: float = -1.0                # the best top-1 of the evaluated epochs
    evaluated_epochs: int = 0              # epochs evaluated so far (--eval_every)
    # run.json's two: the weights the whole run started from (a resumed run: its first part's),
    # and the checkpoint this part resumed from (None: it did not resume)
    start_checkpoint: Optional[dict] = None
    resumed_from: Optional[dict] = None
    ema: Optional[ModelEmaV3] = None
    optimizer: Optional[torch.optim.Optimizer] = None
    scaler: Optional[torch.amp.GradScaler] = None
    amp_dtype: Optional[torch.dtype] = None

    @property
    def model(self) -> nn.Module:
        return self.data.model

    @property
    def total_iters(self) -> int:
        return self.args.epochs * self.iters_per_epoch

    @property
    def resuming(self) -> bool:
        return self.resumed_from is not None

    def evaluates(self, epoch: int) -> bool:
        """Whether ``epoch`` (from 0) ends with an evaluation: every ``--eval_every``-th, and the last."""
        return (epoch + 1) % self.args.eval_every == 0 or epoch == self.args.epochs - 1


class CheckpointSaver:
    """Writes ``checkpoint-last.pth`` / ``checkpoint-best.pth`` of a run (in the
    spirit of timm's ``CheckpointSaver``): atomically, with every rank's RNG
    (a collective: every rank calls each save point), never with non-finite
    weights. A save point serializes once and gathers the RNG states once:
    ``checkpoint-best.pth`` is a hard link (or copy) of the ``checkpoint-last.pth``
    it just wrote, which holds the same state."""

    LAST, BEST = CHECKPOINT_LAST, CHECKPOINT_BEST

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def save(self, next_step: int, best: bool = False) -> None:
        """``checkpoint-last.pth`` at ``next_step``, and ``checkpoint-best.pth`` as the same file when ``best``."""
        ctx = self.ctx
        rngs = gather_rng_states()
        if not D.is_main():
            return
        params = list(ctx.model.parameters())
        if params and not torch.stack([torch.isfinite(p).all() for p in params]).all():  # one device read
            raise NonFiniteLossError(f"weights became non-finite before update {next_step}: training "
                                     f"stopped without overwriting {ctx.out / self.LAST}")
        atomic_save({
            "model": ctx.model.state_dict(), "optimizer": ctx.optimizer.state_dict(),
            "scaler": ctx.scaler.state_dict() if ctx.scaler else None,
            "ema": ctx.ema.state_dict() if ctx.ema is not None else None,
            "epoch": next_step // ctx.iters_per_epoch, "step_in_epoch": next_step % ctx.iters_per_epoch,
            "next_step": next_step, "iters_per_epoch": ctx.iters_per_epoch, "num_classes": len(ctx.data.classes),
            "rng": rngs, "args": dict(vars(ctx.args)), "kind": ctx.kind, "best_top1": ctx.best_top1,
            "evaluated_epochs": ctx.evaluated_epochs,
            "start_checkpoint": ctx.start_checkpoint, "normalization": model_normalization(ctx.model),
        }, ctx.out / self.LAST)
        if best:
            atomic_duplicate(ctx.out / self.LAST, ctx.out / self.BEST)

    def end_of_epoch(self, next_step: int, top1: Optional[float]) -> None:
        """An evaluated epoch (``top1`` measured): ``checkpoint-last.pth``, and
        ``checkpoint-best.pth`` when ``top1`` is the best so far. Another epoch
        (``--eval_every``) saves only where a multiple of ``--ckpt_every_iters``
        falls on its end (with 0: at every epoch end), so short epochs do not pay a
        checkpoint each."""
        ctx = self.ctx
        if top1 is None:
            every = ctx.args.ckpt_every_iters
            if not every or next_step % every == 0:
                self.save(next_step)
            return
        is_best = top1 > ctx.best_top1
        ctx.best_top1 = max(ctx.best_top1, top1)
        self.save(next_step, best=is_best)

    def within_epoch(self, next_step: int) -> None:
        """``checkpoint-last.pth`` every ``--ckpt_every_iters`` updates (epoch ends: ``end_of_epoch``)."""
        every = self.ctx.args.ckpt_every_iters
        if every and next_step % every == 0 and next_step % self.ctx.iters_per_epoch != 0:
            self.save(next_step)


class TrainingRun:
    kind = "pretrain"
    # Flags a resumed run must share with the checkpoint it resumes.
    resume_must_match = ("model", "batch_size", "update_freq", "epochs")

    def __init__(self, args):
        self.args = args

    # ---- what a kind of run provides ---------------------------------------------------
    def build(self) -> RunData:
        raise NotImplementedError

    def initial_weights(self, ctx: RunContext) -> Optional[dict]:
        """Load the starting weights of a new run; return their provenance (None: from scratch)."""
        return None

    def param_groups(self, model: nn.Module) -> list:
        return param_groups(model, self.args.weight_decay, self.args.layer_decay)

    def train_mode(self, model: nn.Module) -> None:
        model.train()

    def summary(self, ctx: RunContext) -> dict:
        """Fields metrics.json adds for this kind of run."""
        return {}

    def update_hook(self, ctx: RunContext) -> Optional[Callable[[int], None]]:
        """Called after every update with the number of the next one (e.g. diagnostics)."""
        return None

    def validation_metrics(self, model: nn.Module, ctx: RunContext) -> dict:
        """The metrics of ``model`` on the validation loader (``top1`` among them)."""
        return evaluate(model, ctx.data.val_loader, ctx.device, ctx.amp_dtype)

    def loss_function(self, ctx: RunContext) -> Optional[nn.Module]:
        """The training loss when a kind of run has its own (None: the recipe's)."""
        return None

    def forward_module(self, ctx: RunContext) -> nn.Module:
        """What training and validation call on a batch of the loaders (a probe on
        cached features: the classifier alone). Checkpoints always hold ``ctx.model``."""
        return ctx.model

    # ---- the run ------------------------------------------------------------------------
    def run(self) -> dict:
        ctx = None
        try:
            ctx = self.setup()
            self.restore(ctx)
            if self.args.eval:
                return self.evaluate_only(ctx)
            self.write_record(ctx)
            return self.export(ctx, **self.train(ctx))
        finally:
            if ctx is not None:
                release_workers(ctx.data.train_loader, ctx.data.val_loader)
            D.cleanup()

    def setup(self) -> RunContext:
        """Device, process group, seeds, output dir, model and data, drop plan and sites."""
        args = self.args
        device = D.pick_device()
        D.init_distributed(device)
        out = Path(args.output_dir)
        if D.is_main():
            if out.exists() and not out.is_dir():
                raise ConfigError(f"--output_dir {out} is a file, not a directory")
            out.mkdir(parents=True, exist_ok=True)
        D.barrier()
        random.seed(args.seed + D.rank())
        np.random.seed(args.seed + D.rank())
        torch.manual_seed(args.seed + D.rank())

        data = self.build()
        per_update = args.batch_size * args.update_freq
        iters_per_epoch = len(data.train_sampler) // per_update
        if iters_per_epoch == 0:
            raise DataError(f"{data.description}: {len(data.train_set)} training images are fewer than one "
                            f"update (--batch_size {args.batch_size} x --update_freq {args.update_freq} x "
                            f"{D.world_size()} processes)")
        if (args.mixup > 0 or args.cutmix > 0) and args.batch_size % 2:
            raise ConfigError(f"--batch_size {args.batch_size} must be even with mixup/cutmix")
        try:
            plan = DropPlan.from_flags(vars(args), iters_per_epoch)
        except ValueError as exc:
            raise ConfigError(f"drop schedule: {exc}") from None
        sites = DropSites(data.model, args.model)
        data.model.to(device)
        if args.channels_last:
            to_channels_last(data.model)
        return RunContext(args, self.kind, device, out, data, plan, sites, iters_per_epoch)

    def restore(self, ctx: RunContext) -> None:
        """Resume a checkpoint or load the starting weights; build EMA (a copy of the
        loaded model), optimizer and AMP scaler, and load their states when resuming."""
        args, out = self.args, ctx.out
        resume = latest_checkpoint(out) if args.resume == "auto" else (Path(args.resume) if args.resume else None)
        if resume is None and not args.eval and latest_checkpoint(out) is not None:
            raise ConfigError(f"--output_dir {out} already holds a run (checkpoint-last.pth): pass --resume auto "
                              "to continue it, or choose another --output_dir")
        ckpt = self._load_resume(ctx, resume) if resume is not None else None
        if ckpt is None:
            ctx.start_checkpoint = self.initial_weights(ctx)
        ctx.ema = ModelEmaV3(ctx.model, decay=args.model_ema_decay) if args.model_ema else None
        try:
            groups = self.param_groups(ctx.model)
        except ValueError as exc:
            raise ConfigError(f"--model {args.model}: {exc}") from None
        ctx.optimizer = adamw(groups, args.lr, args.opt_betas, args.fused_adamw, ctx.device)
        ctx.amp_dtype = amp_dtype_for(args.amp, ctx.device)
        ctx.scaler = torch.amp.GradScaler(ctx.device.type) if ctx.amp_dtype == torch.float16 else None
        if ckpt is not None:
            ctx.optimizer.load_state_dict(ckpt["optimizer"])
            if ctx.scaler is not None and ckpt.get("scaler"):
                ctx.scaler.load_state_dict(ckpt["scaler"])
            if ctx.ema is not None and ckpt.get("ema"):
                ctx.ema.load_state_dict(ckpt["ema"])
            rngs = ckpt["rng"]
            if len(rngs) == D.world_size():
                set_rng_state(rngs[D.rank()])
            ctx.next_step, ctx.best_top1 = ckpt["next_step"], ckpt.get("best_top1", -1.0)
            # checkpoints from before --eval_every: every finished epoch was evaluated
            ctx.evaluated_epochs = ckpt.get("evaluated_epochs", ctx.next_step // ctx.iters_per_epoch)
            ctx.start_checkpoint = ckpt.get("start_checkpoint")
            ctx.resumed_from = {"path": str(resume.resolve()), "sha256": file_sha256(resume),
                                "next_step": ctx.next_step, "run_started_from": ctx.start_checkpoint}
            if D.is_main():  # forget what a killed run logged after this checkpoint
                next_step, epoch = ctx.next_step, ctx.next_step // ctx.iters_per_epoch
                trim_jsonl(out / ITER_LOG, lambda r: r["step"] < next_step)
                trim_jsonl(out / EPOCH_LOG, lambda r: r["epoch"] < epoch)
                trim_jsonl(out / DIAGNOSTICS, lambda r: r["step"] <= next_step)

    def evaluate_only(self, ctx: RunContext) -> dict:
        """``--eval``: measure the loaded weights; records go beside, not over, a training run's."""
        metrics = self.validation_metrics(ctx.model, ctx)
        if D.is_main():
            print(json.dumps(metrics))
            save_config(self.args, ctx.out / EVAL_CONFIG)
            write_eval_metrics(ctx.out, {"kind": self.kind, "weights": ctx.resumed_from or ctx.start_checkpoint,
                                         "val": metrics, **self.summary(ctx)})
        return metrics

    def write_record(self, ctx: RunContext) -> None:
        """``config.yaml`` (reproduces the run) and ``run.json`` (what it is)."""
        if not D.is_main():
            return
        args = self.args
        save_config(args, ctx.out / CONFIG)
        write_run_info(ctx.out, {
            "kind": self.kind, "model": args.model, "method": ctx.plan.describe(),
            "init": "resume" if ctx.resuming else ("weights" if ctx.start_checkpoint else "scratch"),
            "start_checkpoint": ctx.start_checkpoint, "resumed_from": ctx.resumed_from,
            **ctx.data.record, "classes": list(ctx.data.classes), "train_images": len(ctx.data.train_set),
            "iters_per_epoch": ctx.iters_per_epoch, "total_iters": ctx.total_iters, "world_size": D.world_size(),
            "device": str(ctx.device), "normalization": model_normalization(ctx.model),
            # the precision that ran: fp32 (no autocast), bf16 or fp16 autocast
            "amp": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(ctx.amp_dtype, "fp32"), "versions": {
                "torch": torch.__version__, "timm": timm.__version__}})

    def make_trainer(self, ctx: RunContext, logger: RunLogger, on_update: Callable[[int], None]) -> Trainer:
        args = self.args
        model = self.forward_module(ctx)
        if D.world_size() > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        if args.compile:
            # a rate that changes every update keeps the drop sites eager (no recompiles)
            model = compile_model(model, ctx.sites, changing_rates=ctx.plan.changes_every_update)
        mixup_fn = None
        if args.mixup > 0 or args.cutmix > 0:
            mixup_fn = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, prob=args.mixup_prob,
                             switch_prob=args.mixup_switch_prob, label_smoothing=args.smoothing,
                             num_classes=len(ctx.data.classes))
            criterion = SoftTargetCrossEntropy()
        elif args.smoothing > 0:
            criterion = LabelSmoothingCrossEntropy(smoothing=args.smoothing)
        else:
            criterion = nn.CrossEntropyLoss()
        criterion = self.loss_function(ctx) or criterion
        lr_schedule = CosineSchedule(args.lr, args.min_lr, ctx.total_iters,
                                     warmup_iters=int(round(args.warmup_epochs * ctx.iters_per_epoch)))
        wd_end = args.weight_decay if args.weight_decay_end is None else args.weight_decay_end
        wd_schedule = CosineSchedule(args.weight_decay, wd_end, ctx.total_iters)
        return Trainer(model, ctx.optimizer, criterion, ctx.sites, ctx.plan, lr_schedule, wd_schedule,
                       ctx.iters_per_epoch, args.update_freq, ctx.device, logger, amp_dtype=ctx.amp_dtype,
                       scaler=ctx.scaler, ema=ctx.ema, mixup_fn=mixup_fn, clip_grad=args.clip_grad,
                       print_freq=args.print_freq, on_update=on_update, train_mode=self.train_mode,
                       channels_last=args.channels_last)

    def train(self, ctx: RunContext) -> dict:
        """The epochs left; evaluates (``--eval_every``) and checkpoints after them. Returns what export needs."""
        args, data = self.args, ctx.data
        saver = CheckpointSaver(ctx)
        hook = self.update_hook(ctx)

        def on_update(next_step: int) -> None:
            if hook is not None:
                hook(next_step)
            saver.within_epoch(next_step)

        logger = RunLogger(ctx.out, tensorboard=args.tensorboard)
        trainer = self.make_trainer(ctx, logger, on_update)
        logger.info(f"{self.kind}: {args.model} ({ctx.plan.describe()}) on {data.description}, "
                    f"{len(data.train_set)} images, {len(data.classes)} classes; {ctx.iters_per_epoch} updates/epoch"
                    f" x {args.epochs} epochs on {ctx.device}"
                    + (f", resuming at update {ctx.next_step}" if ctx.resuming else ""))
        t0 = time.time()
        val = ema_val = None
        train_loss = float("nan")
        for epoch in range(ctx.next_step // ctx.iters_per_epoch, args.epochs):
            start = ctx.next_step - epoch * ctx.iters_per_epoch
            data.train_sampler.set_epoch(epoch, start=start * args.update_freq * args.batch_size)
            train_loss = trainer.train_one_epoch(data.train_loader, epoch, start_step=start)
            ctx.next_step = (epoch + 1) * ctx.iters_per_epoch
            rec = {"epoch": epoch, "step": ctx.next_step, "train_loss": train_loss}
            text = f"epoch {epoch}: train loss {train_loss:.4f}"
            evaluated = ctx.evaluates(epoch)
            if evaluated:  # the log of another epoch has no val_* keys
                val, ema_val = self._validate(ctx)
                ctx.evaluated_epochs += 1
                rec.update({f"val_{k}": v for k, v in val.items() if k != "n"})
                text += f", val top-1 {val['top1']:.2f}"
                if ema_val is not None:
                    rec.update({f"ema_val_{k}": v for k, v in ema_val.items() if k != "n"})
                    text += f", EMA top-1 {ema_val['top1']:.2f}"
            logger.epoch({**rec, "time": time.time() - t0})
            logger.info(text)
            saver.end_of_epoch(ctx.next_step, val["top1"] if evaluated else None)
        logger.close()
        if val is None:  # resumed a run that had already finished: evaluate what it left
            val, ema_val = self._validate(ctx)
        return {"val": val, "ema_val": ema_val, "train_loss": train_loss, "wall_time_s": time.time() - t0}

    def export(self, ctx: RunContext, val: dict, ema_val: Optional[dict], train_loss: float,
               wall_time_s: float) -> dict:
        """``weights.pth`` (+ ``weights_ema.pth``) with their meta, then ``metrics.json``,
        written last: it marks the run as finished."""
        args, model = self.args, ctx.model
        method = ctx.plan.describe()
        meta = {"format": EXPORT_FORMAT, "kind": self.kind, **run_meta(vars(args), method),
                **model_normalization(model), "timm_name": type(model).__name__,
                "num_classes": len(ctx.data.classes), "top1": val["top1"]}
        metrics = {"kind": self.kind, "model": args.model, "method": method, **self.summary(ctx),
                   "epochs": args.epochs, "total_iters": ctx.total_iters, "final": val, "best_top1": ctx.best_top1,
                   # best_top1 is the best of these epochs only
                   "eval_every": args.eval_every, "evaluated_epochs": ctx.evaluated_epochs,
                   "ema_final": ema_val, "train_loss_last_epoch": train_loss, "wall_time_s": wall_time_s}
        if D.is_main():
            atomic_save({"model": model.state_dict(), "meta": {**meta, "ema": False}}, ctx.out / WEIGHTS)
            if ctx.ema is not None:
                atomic_save({"model": ctx.ema.module.state_dict(),
                             "meta": {**meta, "ema": True, "top1": ema_val["top1"] if ema_val else None}},
                            ctx.out / WEIGHTS_EMA)
            write_final_metrics(ctx.out, metrics)
        return metrics

    def _validate(self, ctx: RunContext):
        val = self.validation_metrics(self.forward_module(ctx), ctx)
        ema_val = self.validation_metrics(ctx.ema.module, ctx) if ctx.ema else None
        return val, ema_val

    def _load_resume(self, ctx: RunContext, resume: Path) -> dict:
        """The checkpoint to resume, after checking that it belongs to this run; loads the model's weights."""
        args = self.args
        ckpt = load_training_checkpoint(resume)
        saved = ckpt["args"]
        for key in self.resume_must_match:
            if saved.get(key) != getattr(args, key):
                raise ConfigError(f"--resume {resume}: the checkpoint was trained with {key}={saved.get(key)!r}, "
                                  f"this run has {key}={getattr(args, key)!r}")
        saved_classes, num_classes = ckpt.get("num_classes"), len(ctx.data.classes)
        if saved_classes is not None and saved_classes != num_classes:
            raise ConfigError(f"--resume {resume}: the checkpoint's classifier has {saved_classes} classes, "
                              f"{ctx.data.description} has {num_classes}")
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
        if ckpt["iters_per_epoch"] != ctx.iters_per_epoch:
            raise ConfigError(f"--resume {resume}: {ckpt['iters_per_epoch']} updates per epoch in the checkpoint, "
                              f"{ctx.iters_per_epoch} now (data or number of processes changed)")
        try:
            ctx.model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"--resume {resume}: weights do not fit {args.model}: "
                                  f"{str(exc).splitlines()[0]}") from None
        return ckpt

"""The pretraining engine against what a user would otherwise run: a bare timm +
PyTorch loop doing identical work.

    .venv/bin/python benchmarks/bench_engine.py [--rounds 4] [--epochs 2]

Both sides read the same ImageFolder (generated: 12 classes x 64 JPEGs at 80
px) through the same timm transforms (the CPU demo preset,
``pretrain_configs/demo_cpu.yaml``: random-resized crop + flip at 64 px), train
the same model (the demo's 4-block ViT-T) with AdamW, a per-update cosine
schedule, fp32 and the same number of workers. The engine is ``python -m
pretrain`` as is (schedules, drop sites, log_iter.jsonl and TensorBoard per
update, the finiteness check, validation and checkpoints at epoch ends); the
bare loop is timm's train.py reduced to its core (``create_optimizer_v2``,
``CosineLRScheduler.step_update``, ``ModelEmaV3``, validation and a checkpoint
at each epoch end).

Each side runs in its own process, alternately, ``--rounds`` times per case:

* steady-state img/s: updates within an epoch, the first of each epoch (loader
  start) left out; target engine/bare >= 0.97;
* startup: launch to the end of the first update (imports, data, model);
* CPU: of the main process per steady-state update, and of the DataLoader
  workers per trained image (their validation images included, on both sides);
* peak RSS of the process (and of its largest DataLoader worker).

Cases: ``plain`` (the preset) and ``ema_accum`` (EMA, batch 16 x 2 accumulated).

``--step``: the engine's update alone, in one process: ``Trainer.train_one_epoch``
against the bare loop's update (same model weights, AdamW, schedule, EMA and
accumulation) over the same in-memory batches, epochs alternating, CPU time
per update (one thread). No loader, no workers: what the engine's own
bookkeeping costs (schedules, drop sites, the per-update record, the one
device read, EMA/accumulation), without the 2-core contention with the
DataLoader workers that widens the end-to-end spread.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchlib

PRESET = Path(benchlib.REPO) / "pretrain_configs/demo_cpu.yaml"
CASES = {"plain": [], "ema_accum": ["--model_ema", "--model_ema_decay", "0.999", "--batch_size", "16",
                                     "--update_freq", "2"]}
STAMPS: list = []  # (next update, wall clock, this process's CPU seconds) after every update
EPOCH_ENDS: list = []  # wall clock at each epoch's end, after its validation and checkpoint
PHASES: list = []  # (phase, wall clock at its start, seconds) of the work at epoch ends


@contextlib.contextmanager
def phase(name: str):
    t0, c0 = time.time(), time.perf_counter()
    try:
        yield
    finally:
        PHASES.append((name, t0, time.perf_counter() - c0))


def engine_args(data: str, out: str, epochs: int, case: str) -> list:
    return ["--config", str(PRESET), "--data_path", data, "--output_dir", out, "--epochs", str(epochs),
            "--print_freq", "0", *CASES[case]]


def stamped(run_class):
    """``run_class`` (a TrainingRun) stamping the end of every update through the
    public per-update hook."""
    class StampedRun(run_class):
        def update_hook(self, ctx):
            inner = super().update_hook(ctx)
            self.iters_per_epoch = ctx.iters_per_epoch

            def hook(next_step: int) -> None:
                STAMPS.append((next_step, time.time(), time.process_time()))
                if inner is not None:
                    inner(next_step)
            return hook
    return StampedRun


def run_engine(argv: list) -> int:
    from pretrain.config import parse_args
    from pretrain.run import PretrainRun
    run = stamped(PretrainRun)(parse_args(argv))
    run.run()
    return run.iters_per_epoch


def run_bare(argv: list, parse_args=None, validate: bool = True) -> int:
    """timm's train.py, reduced: what a user would write with timm and PyTorch.
    Loaders with persistent workers, as timm's ``create_loader``. ``parse_args``
    reads the values of the preset (default: pretraining's); without ``validate``
    the training updates alone (no validation, no checkpoint)."""
    import timm
    import torch
    from timm.data import create_transform
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler
    from timm.utils import ModelEmaV3
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    if parse_args is None:
        from pretrain.config import parse_args  # only to read the preset's values
    args = parse_args(argv)
    Path(args.output_dir).mkdir(parents=True)
    torch.manual_seed(args.seed)
    train = ImageFolder(str(Path(args.data_path) / "train"), create_transform(
        args.input_size, is_training=True, auto_augment=None, re_prob=args.reprob, re_mode="pixel",
        interpolation="bicubic", scale=tuple(args.scale), color_jitter=args.color_jitter,
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)))
    persistent = dict(num_workers=args.num_workers, persistent_workers=args.num_workers > 0)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        pin_memory=torch.cuda.is_available(), **persistent)
    val = ImageFolder(str(Path(args.data_path) / "val"), create_transform(
        args.input_size, is_training=False, interpolation="bicubic", crop_pct=args.crop_pct,
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)))
    val_loader = DataLoader(val, batch_size=args.batch_size, **persistent)
    model = timm.create_model("vit_tiny_patch16_224", num_classes=len(train.classes), img_size=args.input_size,
                              **args.model_kwargs)
    opt = create_optimizer_v2(model, "adamw", lr=args.lr, weight_decay=args.weight_decay, betas=tuple(args.opt_betas),
                              layer_decay=args.layer_decay if args.layer_decay < 1 else None)
    ipe = len(loader) // args.update_freq
    sched = CosineLRScheduler(opt, t_initial=args.epochs * ipe, lr_min=args.min_lr,
                              warmup_t=int(args.warmup_epochs * ipe), warmup_lr_init=0.0, t_in_epochs=False)
    ema = ModelEmaV3(model, decay=args.model_ema_decay) if args.model_ema else None
    criterion = torch.nn.CrossEntropyLoss()
    updates = 0
    for _ in range(args.epochs):
        model.train()
        for i, (x, y) in enumerate(loader):
            if i // args.update_freq >= ipe:
                break
            loss = criterion(model(x), y)
            (loss / args.update_freq).backward()
            if (i + 1) % args.update_freq:
                continue
            opt.step()
            opt.zero_grad(set_to_none=True)
            updates += 1
            if ema is not None:
                ema.update(model, step=updates)
            sched.step_update(num_updates=updates)
            STAMPS.append((updates, time.time(), time.process_time()))
        if validate:  # as train.py: validate and save at every epoch end
            model.eval()
            with phase("validation"), torch.no_grad():
                top1 = sum((model(x).argmax(1) == y).sum().item() for x, y in val_loader) / len(val)
            with phase("checkpoint"):
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "top1": top1},
                           Path(args.output_dir) / "last.pth")
        EPOCH_ENDS.append(time.time())
    return ipe


def child(side: str, case: str, data: str, out: str, epochs: int) -> None:
    benchlib.mark_baseline()
    ipe = (run_engine if side == "engine" else run_bare)(engine_args(data, out, epochs, case))
    import resource
    # steady state: update n's time is stamp(n+1) - stamp(n), unless n opens an epoch
    pairs = [(a, b) for a, b in zip(STAMPS, STAMPS[1:]) if a[0] % ipe != 0]
    wall, cpu = sum(b[1] - a[1] for a, b in pairs), sum(b[2] - a[2] for a, b in pairs)
    per_update = 32  # images per update in both cases (32, or 16 x 2)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # the DataLoader workers, all epochs
    benchlib.emit({"img_s": per_update * len(pairs) / wall, "cpu_ms_update": 1e3 * cpu / len(pairs),
                   "worker_cpu_ms_image": 1e3 * (workers.ru_utime + workers.ru_stime) / (per_update * len(STAMPS)),
                   "first_update": STAMPS[0][1], "updates": len(STAMPS)})


def make_data(root: Path) -> str:
    from demo_data import write_imagenet
    write_imagenet(root, train_per_class=64, val_per_class=8, size=80, seed=0)
    return str(root)


def step_ratio(case: str, rounds: int) -> None:
    """Engine update vs bare update on identical in-memory batches, one process (``--step``)."""
    import torch
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler
    from timm.utils import ModelEmaV3

    from backbones import DropPlan, DropSites, create_model_with_drop
    from pretrain.config import parse_args
    from training.engine import Trainer, param_groups
    from training.fast_paths import adamw
    from training.logger import RunLogger
    from training.schedules import CosineSchedule
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        args = parse_args(engine_args("unused", f"{tmp}/run", 100, case))
        torch.manual_seed(0)
        n = 24 * args.update_freq
        batches = [(torch.randn(args.batch_size, 3, 64, 64), torch.randint(0, 12, (args.batch_size,)))
                   for _ in range(n)]
        kw = dict(img_size=64, num_classes=12, **args.model_kwargs)
        models = {side: create_model_with_drop("vit_tiny", **kw) for side in ("engine", "bare")}
        models["bare"].load_state_dict(models["engine"].state_dict())
        emas = {side: ModelEmaV3(m, decay=args.model_ema_decay) if args.model_ema else None
                for side, m in models.items()}
        ipe, total = 24, 24 * 100
        opt = adamw(param_groups(models["engine"], args.weight_decay), args.lr, args.opt_betas, "off",
                    torch.device("cpu"))
        trainer = Trainer(models["engine"], opt, torch.nn.CrossEntropyLoss(), DropSites(models["engine"], "vit_tiny"),
                          DropPlan.from_flags(vars(args), ipe), CosineSchedule(args.lr, args.min_lr, total, ipe),
                          CosineSchedule(args.weight_decay, args.weight_decay, total), ipe, args.update_freq,
                          torch.device("cpu"), RunLogger(Path(tmp), tensorboard=True), ema=emas["engine"],
                          print_freq=0)
        bare_opt = create_optimizer_v2(models["bare"], "adamw", lr=args.lr, weight_decay=args.weight_decay,
                                       betas=tuple(args.opt_betas))
        sched = CosineLRScheduler(bare_opt, t_initial=total, lr_min=args.min_lr, warmup_t=ipe, warmup_lr_init=0.0,
                                  t_in_epochs=False)
        criterion, epoch = torch.nn.CrossEntropyLoss(), {"engine": 0, "bare": 0}

        def engine():
            trainer.train_one_epoch(batches, epoch["engine"])
            epoch["engine"] += 1

        def bare():
            model, updates = models["bare"], epoch["bare"] * ipe
            model.train()
            for i, (x, y) in enumerate(batches):
                (criterion(model(x), y) / args.update_freq).backward()
                if (i + 1) % args.update_freq:
                    continue
                bare_opt.step()
                bare_opt.zero_grad(set_to_none=True)
                updates += 1
                if emas["bare"] is not None:
                    emas["bare"].update(model, step=updates)
                sched.step_update(num_updates=updates)
            epoch["bare"] += 1
        cpu: dict = {}
        benchlib.alternate({"engine": engine, "bare": bare}, rounds, cpu=cpu)
    print(f"\ncase {case}, --step: one thread, {ipe} updates of {args.batch_size} x {args.update_freq} per epoch, "
          f"{rounds} alternating epochs, CPU ms per update, median (min-max)")
    for side in ("engine", "bare"):
        print(f"  {side:<7} {benchlib.spread([1e3 * t / ipe for t in cpu[side]])}")
    print("  " + benchlib.ratio_line("engine/bare CPU per update (in-process)",
                                     benchlib.ratio(cpu["engine"], cpu["bare"]), "<= 1.03"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_rounds_argument(p, 4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--step", action="store_true", help="the update alone, in-process (see above)")
    p.add_argument("--side", choices=("engine", "bare"))
    p.add_argument("--case", default="plain")
    p.add_argument("--data")
    p.add_argument("--out")
    a = p.parse_args()
    if a.side:
        return child(a.side, a.case, a.data, a.out, a.epochs)
    if a.step:
        print(benchlib.header("the engine's update vs a bare update, in one process (demo ViT, 64 px, fp32)"))
        for case in a.cases:
            step_ratio(case, a.rounds)
        return
    print(benchlib.header("pretraining engine vs a bare timm + PyTorch loop (demo ViT, 64 px, batch 32, "
                          "2 workers, fp32)"))
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "imagenet")
        for case in a.cases:
            res = {"engine": [], "bare": []}
            for r in range(a.rounds):
                for side in benchlib.round_order(("engine", "bare"), r):
                    res[side].append(benchlib.run_child([__file__, "--side", side, "--case", case, "--data", data,
                                                         "--out", f"{tmp}/{case}-{side}-{r}", "--epochs", a.epochs]))
            print(f"\ncase {case}: {a.epochs} epochs x {res['engine'][0]['updates'] // a.epochs} updates, "
                  f"{a.rounds} alternating rounds (median (min-max))")
            for side, runs in res.items():
                print(f"  {side:<7} {benchlib.spread([r['img_s'] for r in runs])} img/s   "
                      f"main CPU {benchlib.spread([r['cpu_ms_update'] for r in runs])} ms/update   "
                      f"worker CPU {benchlib.spread([r['worker_cpu_ms_image'] for r in runs])} ms/image   "
                      f"startup {benchlib.spread([r['first_update'] - r['launched'] for r in runs])} s   "
                      f"{benchlib.memory_text(runs[0]['memory'])}")
            img_s = benchlib.ratio([r["img_s"] for r in res["engine"]], [r["img_s"] for r in res["bare"]])
            print("  " + benchlib.ratio_line("engine/bare img/s", img_s, ">= 0.97"))
            for key, what in (("cpu_ms_update", "main-process CPU per update"),
                              ("worker_cpu_ms_image", "worker CPU per image")):
                cost = benchlib.ratio([r[key] for r in res["engine"]], [r[key] for r in res["bare"]])
                print("  " + benchlib.ratio_line(f"engine/bare {what}", cost, "<= 1.03 (the img/s target)"))
            start = benchlib.ratio([r["first_update"] - r["launched"] for r in res["engine"]],
                                   [r["first_update"] - r["launched"] for r in res["bare"]])
            print("  " + benchlib.ratio_line("engine/bare startup", start, "(reported)"))
            print("  json " + json.dumps({"case": case, "ratio_median": statistics.median(img_s)}))


if __name__ == "__main__":
    sys.exit(main())

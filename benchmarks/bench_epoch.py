"""The engine against a bare timm loop at the epoch level: an epoch's wall time
with its evaluation and checkpoints, and where that time goes.

    .venv/bin/python benchmarks/bench_epoch.py [--rounds 4] [--cases short flowers]

Both sides are those of ``bench_engine.py`` (the same generated JPEGs, timm
transforms, demo ViT, AdamW with a per-update cosine lr, fp32, 2 workers; the
bare loop is timm's train.py reduced, with persistent loader workers as timm's
``create_loader``), each in its own process, alternating rounds.

* ``short``: pretraining (``python -m pretrain``, the demo preset) on 20 updates
  an epoch (12 classes x 54 training images, batch 32), validating 96 images
  after every epoch; the bare loop validates the same images and saves a
  checkpoint after every epoch. An epoch's time runs from the end of one epoch
  (after its validation and checkpoint) to the end of the next; median of the
  epochs after the first. Target: bare / engine epoch time (= the engine's
  share of the bare loop's img/s) >= 0.97.
* ``flowers``: a Flowers-102-shaped fine-tune (``python -m cls_finetune``, the
  demo fine-tuning preset): 3 updates of 16 images an epoch, a test split 4x the
  images trained per epoch (Flowers-102: 6,149 test images against 3 x 512
  trained), for ``eval_every`` epochs of ``cls_configs/datasets/flowers102.yaml``
  (so one evaluation, the last, and the checkpoints that go with it), against
  the bare loop's training updates alone (no validation, no checkpoint); and
  the same fine-tune with ``--eval_every 1``, for what evaluating every epoch
  costs. Time: from the end of the first update to the end of the last epoch.
  Target: engine (``eval_every`` of the dataset) / bare updates alone <= 1.1.

The profile splits each side's time into the updates (all of them, each
epoch's first counted at the median update), the epoch start (what the first
update of an epoch takes beyond an update: loader restart and first batch),
validation, checkpoint, the epoch records (``log.jsonl``, console) and the rest,
in ms per epoch.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bench_engine
import benchlib
import yaml
from bench_engine import EPOCH_ENDS, PHASES, STAMPS, phase

REPO = Path(benchlib.REPO)
PRETRAIN = REPO / "pretrain_configs/demo_cpu.yaml"
FINETUNE = REPO / "cls_configs/demo_cpu.yaml"
FLOWERS_EVAL_EVERY = yaml.safe_load((REPO / "cls_configs/datasets/flowers102.yaml").read_text())["eval_every"]
DEMO_VIT = ["--model", "vit_tiny", "--model_kwargs", "{depth: 4, patch_size: 8, embed_dim: 96, num_heads: 3}"]
# case -> (sides, the one the ratio divides by)
CASES = {"short": (("engine", "bare"), "bare"),
         "flowers": (("engine", "engine_every_epoch", "bare_updates"), "bare_updates")}
PHASE_NAMES = ("updates", "epoch start", "validation", "checkpoint", "epoch records", "other")


def argv_of(case: str, side: str, data: str, weights: str, out: str) -> list:
    common = ["--data_path", data, "--output_dir", out, "--print_freq", "0", "--num_workers", "2"]
    if case == "short":
        return ["--config", str(PRETRAIN), *common, "--epochs", "4"]
    every = 1 if side == "engine_every_epoch" else FLOWERS_EVAL_EVERY
    return ["--config", str(FINETUNE), *common, *DEMO_VIT, "--dataset", "imagefolder", "--finetune", weights,
            "--batch_size", "16", "--epochs", str(FLOWERS_EVAL_EVERY), "--eval_every", str(every),
            "--tensorboard", "false"]


def instrument_engine() -> None:
    """Time the engine's epoch-end work by wrapping the functions that do it."""
    import training.run
    from training.logger import RunLogger

    def timed(owner, name, label):
        fn = getattr(owner, name)

        def wrapper(*a, **k):
            with phase(label):
                return fn(*a, **k)
        setattr(owner, name, wrapper)
    timed(training.run, "evaluate", "validation")
    timed(training.run.CheckpointSaver, "save", "checkpoint")
    timed(RunLogger, "epoch", "epoch records")
    timed(RunLogger, "info", "epoch records")
    end_of_epoch = training.run.CheckpointSaver.end_of_epoch

    def stamped_end(self, *a, **k):  # the last call of an epoch
        end_of_epoch(self, *a, **k)
        EPOCH_ENDS.append(time.time())
    training.run.CheckpointSaver.end_of_epoch = stamped_end


def profile(ipe: int) -> dict:
    """Epoch times and the time of the window (end of the first update to the end
    of the last epoch) by phase, from the stamps."""
    start, stop = STAMPS[0][1], EPOCH_ENDS[-1]
    epoch = [(n - 1) // ipe for n, _, _ in STAMPS]  # the epoch of the update each stamp ends
    within = [b[1] - a[1] for a, b, ea, eb in zip(STAMPS, STAMPS[1:], epoch, epoch[1:]) if ea == eb]
    update = statistics.median(within)
    firsts = [STAMPS[i][1] for i in range(1, len(STAMPS)) if epoch[i] != epoch[i - 1]]
    starts = [t - max(e for e in EPOCH_ENDS if e < t) for t in firsts]
    epochs = len(EPOCH_ENDS)
    phases = {"updates": sum(within) + update * len(firsts), "epoch start": sum(starts) - update * len(firsts)}
    for name, t0, seconds in PHASES:
        if start <= t0 <= stop:
            phases[name] = phases.get(name, 0.0) + seconds
    phases["other"] = (stop - start) - sum(phases.values())
    return {"window_s": stop - start, "epoch_s": [b - a for a, b in zip(EPOCH_ENDS, EPOCH_ENDS[1:])],
            "ms_per_epoch": {k: 1e3 * v / epochs for k, v in phases.items()}, "update_ms": 1e3 * update,
            "epochs": epochs, "updates": len(STAMPS)}


def child(case: str, side: str, data: str, weights: str, out: str) -> None:
    argv = argv_of(case, side, data, weights, out)
    if side.startswith("engine"):
        instrument_engine()
        if case == "short":
            ipe = bench_engine.run_engine(argv)
        else:
            from cls_finetune.config import parse_args
            from cls_finetune.main import FinetuneRun
            run = bench_engine.stamped(FinetuneRun)(parse_args(argv))
            run.run()
            ipe = run.iters_per_epoch
    else:
        parse = None
        if case == "flowers":
            from cls_finetune.config import parse_args as parse
        ipe = bench_engine.run_bare(argv, parse_args=parse, validate=side == "bare")
    benchlib.emit(profile(ipe))


def make_data(root: Path) -> dict:
    """The two cases' folders, and weights for the fine-tune (one demo pretraining epoch)."""
    import subprocess

    from demo_data import write_imagenet
    write_imagenet(root / "short", train_per_class=54, val_per_class=8, size=80, seed=0)  # 648 / 32 = 20
    write_imagenet(root / "flowers", train_per_class=4, val_per_class=16, size=80, seed=1)  # 48 / 16 = 3
    subprocess.run([benchlib.PYTHON, "-m", "pretrain", "--config", str(PRETRAIN), "--data_path", str(root / "short"),
                    "--output_dir", str(root / "pretrained"), "--epochs", "1", "--print_freq", "0"],
                   cwd=REPO, check=True, capture_output=True)
    return {"short": str(root / "short"), "flowers": str(root / "flowers"),
            "weights": str(root / "pretrained/weights.pth")}


def report(case: str, res: dict) -> None:
    sides, base = CASES[case]
    first = res[sides[0]][0]
    print(f"\ncase {case}: {first['epochs']} epochs, {first['updates']} updates, "
          f"{len(res[base])} alternating rounds (median (min-max))")
    for side in sides:
        runs = res[side]
        print(f"  {side:<19} window {benchlib.spread([r['window_s'] for r in runs])} s   epoch "
              f"{benchlib.spread([1e3 * statistics.median(r['epoch_s']) for r in runs])} ms   update "
              f"{benchlib.spread([r['update_ms'] for r in runs])} ms")
        parts = [f"{name} {statistics.median([r['ms_per_epoch'].get(name, 0.0) for r in runs]):.1f}"
                 for name in PHASE_NAMES]
        print(f"  {'':<19} ms per epoch: " + ", ".join(parts))
    if case == "short":
        ratio = benchlib.ratio([statistics.median(r["epoch_s"]) for r in res["bare"]],
                               [statistics.median(r["epoch_s"]) for r in res["engine"]])
        print("  " + benchlib.ratio_line("bare/engine epoch time (engine's share of the bare img/s)", ratio, ">= 0.97"))
    else:
        ratio = benchlib.ratio([r["window_s"] for r in res["engine"]], [r["window_s"] for r in res[base]])
        print("  " + benchlib.ratio_line(f"engine (eval_every {FLOWERS_EVAL_EVERY}) / bare updates alone", ratio,
                                         "<= 1.1"))
        every = benchlib.ratio([r["window_s"] for r in res["engine_every_epoch"]],
                               [r["window_s"] for r in res[base]])
        print("  " + benchlib.ratio_line("engine (eval_every 1) / bare updates alone", every, "(reported)"))
    print("  json " + json.dumps({"case": case, "ratio_median": statistics.median(ratio)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_rounds_argument(p, 4)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--case")
    p.add_argument("--side")
    p.add_argument("--data")
    p.add_argument("--weights")
    p.add_argument("--out")
    a = p.parse_args()
    if a.side:
        return child(a.case, a.side, a.data, a.weights, a.out)
    print(benchlib.header("epoch level: the engine's epoch (validation, checkpoints) vs a bare timm loop "
                          "(demo ViT, 64 px, 2 workers, fp32)"))
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp))
        for case in a.cases:
            sides, _ = CASES[case]
            res = {side: [] for side in sides}
            for r in range(a.rounds):
                for side in benchlib.round_order(sides, r):
                    res[side].append(benchlib.run_child([__file__, "--case", case, "--side", side, "--data", data[case],
                                                         "--weights", data["weights"],
                                                         "--out", f"{tmp}/{case}-{side}-{r}"]))
            report(case, res)


if __name__ == "__main__":
    sys.exit(main())

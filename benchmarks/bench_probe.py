"""Linear probe on cached features against today's per-step probe: time to a
finished probe and top-1 of both, on the demo's transfer split.

    .venv/bin/python benchmarks/bench_probe.py [--rounds 4] [--finetune weights.pth]

Both are ``python -m cls_finetune --config cls_configs/demo_cpu_linear_probe.yaml``
(8 epochs, batch 32, 2 workers, AdamW lr 1e-2 with warmup + cosine; 6 classes,
360 train / 120 test images at 64 px), one with ``--probe_features cached``
(each image's features computed once, no augmentation, eval mode; the head
trained on the tensors), one per step (the frozen backbone on every augmented
batch, evaluated on the test images after each epoch). The starting weights
are the demo's ViT, pretrained here for a few epochs unless ``--finetune``
names a checkpoint. Each run is its own process, alternately. Reported: the
run's training time (``wall_time_s`` of metrics.json: features included), the
process's time from launch to exit, top-1, peak RSS. Target: >= 10x faster at
equal or better top-1.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import benchlib

PROBE = f"{benchlib.REPO}/cls_configs/demo_cpu_linear_probe.yaml"
PRETRAIN = f"{benchlib.REPO}/pretrain_configs/demo_cpu.yaml"


def child(mode: str, data: str, weights: str, out: str, epochs: int) -> None:
    import json

    from cls_finetune.main import main as cls_main
    benchlib.mark_baseline()
    argv = ["--config", PROBE, "--data_path", data, "--finetune", weights, "--output_dir", out,
            "--probe_features", mode, "--tensorboard", "false", "--epochs", str(epochs)]
    assert cls_main(argv) == 0
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    benchlib.emit({"train_s": metrics["wall_time_s"], "top1": metrics["final"]["top1"]})


def pretrained(tmp: Path) -> str:
    """The demo's ViT after 4 epochs on the generated ImageNet folders (about a minute on 2 idle cores)."""
    from demo_data import write_imagenet
    from pretrain.main import main as pretrain_main
    write_imagenet(tmp / "imagenet", train_per_class=100, val_per_class=20, size=64, seed=0)
    assert pretrain_main(["--config", PRETRAIN, "--data_path", str(tmp / "imagenet"), "--epochs", "4",
                          "--output_dir", str(tmp / "pretrain"), "--tensorboard", "false", "--print_freq", "0"]) == 0
    return str(tmp / "pretrain/weights.pth")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_rounds_argument(p, 4)
    p.add_argument("--epochs", type=int, default=8, help="the preset's 8")
    p.add_argument("--finetune", help="pretrained weights to probe (default: pretrain the demo ViT here)")
    p.add_argument("--side", choices=("cached", "per_step"))
    p.add_argument("--data")
    p.add_argument("--out")
    a = p.parse_args()
    if a.side:
        return child(a.side, a.data, a.finetune, a.out, a.epochs)
    print(benchlib.header(f"linear probe: cached features vs per step (demo transfer split, demo ViT, "
                          f"{a.epochs} epochs)"))
    from demo_data import write_transfer
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = a.finetune or pretrained(tmp)
        write_transfer(tmp / "transfer", train_per_class=60, test_per_class=20, size=64, seed=0)
        runs = {"cached": [], "per_step": []}
        for r in range(a.rounds):
            for mode in benchlib.round_order(runs, r):
                runs[mode].append(benchlib.run_child(
                    [__file__, "--side", mode, "--data", tmp / "transfer", "--finetune", weights,
                     "--out", tmp / f"{mode}-{r}", "--epochs", a.epochs]))
    print(f"{a.rounds} alternating rounds, median (min-max)")
    for mode, rs in runs.items():
        print(f"  {mode:<9} training {benchlib.spread([x['train_s'] for x in rs])} s   process "
              f"{benchlib.spread([x['wall_s'] for x in rs])} s   top-1 {benchlib.spread([x['top1'] for x in rs])}   "
              f"{benchlib.memory_text(rs[0]['memory'])}")
    for what, key in (("training", "train_s"), ("process", "wall_s")):
        speedup = benchlib.ratio([x[key] for x in runs["per_step"]], [x[key] for x in runs["cached"]])
        print("  " + benchlib.ratio_line(f"speed-up per_step/cached ({what})", speedup, ">= 10"))
    gain = statistics.median(x["top1"] for x in runs["cached"]) - statistics.median(x["top1"] for x in runs["per_step"])
    print(f"  top-1 cached - per_step: {gain:+.2f} points  [target >= 0]")


if __name__ == "__main__":
    sys.exit(main())

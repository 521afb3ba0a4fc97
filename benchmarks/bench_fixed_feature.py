"""The fixed-feature protocol (logistic regression, L-BFGS, penalty chosen on a
validation split) against the AdamW linear probe on the same cached features:
time to a finished run and test accuracy, on the demo's transfer split.

    .venv/bin/python benchmarks/bench_fixed_feature.py [--rounds 4] [--finetune weights.pth]

Both are ``python -m cls_finetune`` runs from the same weights with the same
test-time transform for both splits, so they see the same features:
``cls_configs/demo_cpu_fixed_feature.yaml`` (45 penalties 1e-6..1e5, 10% of
train held out, refit on all of it) and ``cls_configs/demo_cpu_linear_probe.yaml``
with ``--probe_features cached`` (8 epochs of AdamW, lr 1e-2, warmup + cosine).
6 classes, 360 train / 120 test images at 64 px. The starting weights are the
demo's ViT pretrained here for a few epochs (as ``bench_probe.py``) unless
``--finetune`` names a checkpoint. Each run is its own process, alternately.
Reported: ``wall_time_s`` (features included), the fixed-feature run's
regression seconds (the whole search and the refit), the process's time from
launch to exit, top-1 and mean per-class accuracy. Target: the protocol
finishes in seconds on 2 cores.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import benchlib
from bench_probe import pretrained

CONFIGS = {"fixed_feature": [f"{benchlib.REPO}/cls_configs/demo_cpu_fixed_feature.yaml"],
           "adamw_cached": [f"{benchlib.REPO}/cls_configs/demo_cpu_linear_probe.yaml", "--probe_features", "cached"]}


def child(side: str, data: str, weights: str, out: str) -> None:
    import json

    from cls_finetune.main import main as cls_main
    benchlib.mark_baseline()
    config, *extra = CONFIGS[side]
    argv = ["--config", config, *extra, "--data_path", data, "--finetune", weights, "--output_dir", out,
            "--tensorboard", "false"]
    assert cls_main(argv) == 0
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    search = metrics.get("fixed_feature") or {}
    benchlib.emit({"train_s": metrics["wall_time_s"], "top1": metrics["final"]["top1"],
                   "mean_per_class": metrics["final"]["mean_per_class"],
                   "regression_s": search.get("regression_seconds"), "l2": search.get("l2")})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_rounds_argument(p, 4)
    p.add_argument("--finetune", help="pretrained weights (default: pretrain the demo ViT here)")
    p.add_argument("--side", choices=tuple(CONFIGS))
    p.add_argument("--data")
    p.add_argument("--out")
    a = p.parse_args()
    if a.side:
        return child(a.side, a.data, a.finetune, a.out)
    print(benchlib.header("fixed-feature protocol vs AdamW probe on the same cached features (demo transfer split)"))
    from demo_data import write_transfer
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = a.finetune or pretrained(tmp)
        write_transfer(tmp / "transfer", train_per_class=60, test_per_class=20, size=64, seed=0)
        runs = {side: [] for side in CONFIGS}
        for r in range(a.rounds):
            for side in benchlib.round_order(runs, r):
                runs[side].append(benchlib.run_child(
                    [__file__, "--side", side, "--data", tmp / "transfer", "--finetune", weights,
                     "--out", tmp / f"{side}-{r}"]))
    print(f"{a.rounds} alternating rounds, median (min-max)")
    for side, rs in runs.items():
        regression = (f"   regression {benchlib.spread([x['regression_s'] for x in rs])} s (lambda {rs[0]['l2']:g})"
                      if side == "fixed_feature" else "")
        print(f"  {side:<13} run {benchlib.spread([x['train_s'] for x in rs])} s{regression}   process "
              f"{benchlib.spread([x['wall_s'] for x in rs])} s   top-1 {benchlib.spread([x['top1'] for x in rs])}   "
              f"mean per-class {benchlib.spread([x['mean_per_class'] for x in rs])}   "
              f"{benchlib.memory_text(rs[0]['memory'])}")
    ratio = benchlib.ratio([x["train_s"] for x in runs["fixed_feature"]], [x["train_s"] for x in runs["adamw_cached"]])
    print("  " + benchlib.ratio_line("run time fixed_feature / adamw_cached", ratio, "seconds on 2 cores"))
    gain = (statistics.median(x["top1"] for x in runs["fixed_feature"])
            - statistics.median(x["top1"] for x in runs["adamw_cached"]))
    print(f"  top-1 fixed_feature - adamw_cached: {gain:+.2f} points")


if __name__ == "__main__":
    sys.exit(main())

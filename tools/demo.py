"""End-to-end demo on generated data, on the CPU, in a few minutes.

1. writes the demo ImageNet-style folders (data/demo/imagenet);
2. pretrains a small ViT twice with the same seed: no dropout, and early
   dropout (linear from p to 0 over the first epochs), logging the paper's
   gradient diagnostics;
3. prints each run's record and the early-vs-baseline comparison, and plots the
   diagnostics side by side.

Runs that already finished are reused; --fresh starts over. The transfer stages
(detection, segmentation, classification) join this demo as they land.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from demo_data import write_imagenet  # noqa: E402
from pretrain.main import main as pretrain_main  # noqa: E402

RUNS = {
    "no_dropout": [],
    "early_dropout": ["--dropout", "0.1", "--drop_mode", "early", "--drop_schedule", "linear",
                      "--cutoff_epoch", "3"],
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="output/demo")
    p.add_argument("--data", default="data/demo")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--fresh", action="store_true", help="delete earlier demo outputs first")
    args = p.parse_args()
    out, data = Path(args.out), Path(args.data)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    t0 = time.time()

    print("== 1. demo data (ImageNet folder layout)")
    write_imagenet(data / "imagenet", train_per_class=150, val_per_class=30, size=64, seed=0)
    print(f"   {data / 'imagenet'}: 12 classes x 150 train / 30 val images, 64x64")

    print("== 2. pretraining (same seed; the runs differ only in the dropout schedule)")
    for name, flags in RUNS.items():
        run_dir = out / "pretrain" / name
        if (run_dir / "metrics.json").is_file():
            print(f"   {name}: done earlier, reusing {run_dir}")
            continue
        resume = ["--resume", "auto"] if (run_dir / "checkpoint-last.pth").is_file() else []
        argv = ["--config", str(REPO / "pretrain_configs/demo_cpu.yaml"), "--data_path", str(data / "imagenet"),
                "--output_dir", str(run_dir), "--epochs", str(args.epochs), "--diag_every", "40",
                "--diag_batches", "4", "--diag_samples", "256", *flags, *resume]
        print(f"   {name}: python -m pretrain {' '.join(argv)}")
        if pretrain_main(argv) != 0:
            return 1

    print("== 3. records and comparison")
    metrics = {n: json.loads((out / "pretrain" / n / "metrics.json").read_text()) for n in RUNS}
    for n, m in metrics.items():
        print(f"   {n:<14} {m['method']:<40} val top-1 {m['final']['top1']:6.2f}  "
              f"(best {m['best_top1']:.2f}), last-epoch train loss {m['train_loss_last_epoch']:.4f}")
    delta = metrics["early_dropout"]["final"]["top1"] - metrics["no_dropout"]["final"]["top1"]
    print(f"   early dropout - no dropout: {delta:+.2f} top-1 (one seed, tiny data: a demo, not a result)")
    plot = out / "gradient_diagnostics.png"
    subprocess.run([sys.executable, str(REPO / "tools/analyze_gradients.py"), "plot",
                    *[str(out / "pretrain" / n) for n in RUNS], "--out", str(plot)], check=True)
    print(f"   each run dir holds config.yaml, run.json, log_iter.jsonl, log.jsonl, diagnostics.jsonl, "
          f"metrics.json, weights.pth")
    print(f"demo finished in {time.time() - t0:.0f}s; outputs under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""End-to-end demo on generated data, on the CPU, in a few minutes.

1. writes the demo data in real layouts: ImageNet folders, an ImageFolder
   transfer split of new classes, COCO instances, ADE20K semantic maps
   (data/demo/...);
2. runs the demo matrix suites/demo.yaml through the suite runner
   (python -m suite run): a small ViT pretrained twice with the same seed, no
   dropout and early dropout (linear from p to 0 over the first epochs), with the
   paper's gradient diagnostics; then Mask R-CNN (mmdet) and UperNet (mmseg)
   fine-tuned from each checkpoint and evaluated (COCO box/mask AP with
   pycocotools, mIoU), and fine-tuning and a linear probe of each on the
   transfer split;
3. prints each pretraining method against the no-dropout baseline, and plots
   the gradient diagnostics side by side.

Runs that already finished are reused (the runner skips them); --fresh starts over.
--executor slurm runs the same suite file on a Slurm cluster and waits for it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from demo_data import write_demo_data
from suite import load_suite
from suite.__main__ import main as suite_main

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "suites" / "demo.yaml"
DATA = Path("data/demo")  # where suites/demo.yaml reads its data (relative to the working directory)
BASELINE = "no_dropout"
# stage: the metric compared across pretrainings
TRANSFER_METRIC = {"det": "coco/segm_mAP", "seg": "mIoU"}


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def comparison_table(jobs) -> None:
    """Each pretraining method against the no-dropout baseline (one seed, tiny data: a demo, not a result)."""
    rows = {}
    for job in jobs:
        row = rows.setdefault(job.pretrain, {})
        m = _metrics(job.run_dir)
        if job.stage == "pretrain":
            row["method"] = m["method"]
            row["ImageNet-style top-1"] = m["final"]["top1"]
        elif job.stage in TRANSFER_METRIC:
            key = TRANSFER_METRIC[job.stage]
            value = m["metrics"].get(key)
            row[f"{job.stage} {key}"] = None if value is None else value * (100 if key.startswith("coco/") else 1)
        else:
            row[f"cls {job.task.split('/')[0]} top-1"] = m["final"]["top1"]
    columns = [c for c in rows[BASELINE] if c != "method"]
    print(f"   {'pretraining':<42}" + "".join(f"{c:>24}" for c in columns))

    def cell(value, base):
        if value is None:  # the evaluator gave nothing: its metrics.json says why
            return f"{'none':>24}"
        return f"{value:>16.2f}" + (f" ({value - base:+6.2f})" if base is not None else " " * 9)

    for r in rows.values():
        print(f"   {r['method']:<42}" + "".join(cell(r.get(c), rows[BASELINE].get(c)) for c in columns))
    if any(v is None for r in rows.values() for v in r.values()):
        print("   none: the evaluator returned no metric (see the note in that run's metrics.json)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fresh", action="store_true", help="delete earlier demo outputs first")
    p.add_argument("--executor", choices=["local", "slurm"], default="local",
                   help="where the suite runs (slurm: submits and waits)")
    p.add_argument("--jobs", type=int, default=1, help="local: jobs at once")
    args = p.parse_args()
    suite = load_suite(SUITE)
    if args.fresh and suite.output_root.exists():
        shutil.rmtree(suite.output_root)
    t0 = time.time()

    print("== 1. demo data (ImageNet folders, ImageFolder transfer split, COCO json, ADE20K png)")
    for line in write_demo_data(DATA, seed=0):
        print(f"   {line}")

    print(f"== 2. the demo matrix through the suite runner: python -m suite run {SUITE.relative_to(REPO)}")
    runner = ["run", str(SUITE), "--executor", args.executor]
    runner += ["--wait", "--poll", "2"] if args.executor == "slurm" else ["--jobs", str(args.jobs)]
    if suite_main(runner) != 0:
        print(f"   the suite did not finish: python -m suite status {SUITE.relative_to(REPO)} says where it stands")
        return 1

    print("== 3. each method against the no-dropout baseline (one seed, tiny data: a demo, not a result)")
    comparison_table(suite.jobs)
    plot = suite.output_root / "gradient_diagnostics.png"
    subprocess.run([sys.executable, str(REPO / "tools/analyze_gradients.py"), "plot",
                    *[str(j.run_dir) for j in suite.jobs if j.stage == "pretrain"], "--out", str(plot)], check=True)
    print(f"   gradient diagnostics: {plot}")
    print(f"   records under {suite.output_root}: pretrain/<method>/seed0 hold config.yaml, run.json, "
          "log_iter.jsonl, log.jsonl, diagnostics.jsonl, metrics.json, weights.pth; det/demo/<method>/seed0 and "
          "seg/demo/<method>/seed0 hold run.json, metrics.json, metrics_val.jsonl and mmengine's config dump and "
          "logs; cls/<recipe>/transfer/<method>/seed0 hold config.yaml, run.json, log_iter.jsonl, log.jsonl, "
          "metrics.json; .suite/ holds each job's log")
    print(f"demo finished in {time.time() - t0:.0f}s; outputs under {suite.output_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

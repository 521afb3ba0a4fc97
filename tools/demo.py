"""End-to-end demo on generated data, on the CPU, in a few minutes.

1. writes the demo data in real layouts: ImageNet folders, an ImageFolder
   transfer split of new classes, COCO instances, ADE20K semantic maps
   (data/demo/...);
2. pretrains a small ViT twice with the same seed: no dropout, and early
   dropout (linear from p to 0 over the first epochs), logging the paper's
   gradient diagnostics;
3. fine-tunes Mask R-CNN (mmdet) and UperNet (mmseg) from each checkpoint and
   evaluates them (COCO box/mask AP with pycocotools, mIoU);
4. fine-tunes and linear-probes each checkpoint on the transfer split
   (cls_finetune, through the sweep runner);
5. prints each pretraining method against the no-dropout baseline, and plots
   the gradient diagnostics side by side.

Runs that already finished are reused; --fresh starts over.
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

from cls_finetune.sweep import expand, run_sweep  # noqa: E402
from demo_data import write_demo_data  # noqa: E402
from pretrain.main import main as pretrain_main  # noqa: E402

TRANSFER = {  # task: (config, the metric compared across pretrainings)
    "det": ("det_configs/demo/mask-rcnn_vit-demo_fpn_coco-demo.py", "coco/segm_mAP"),
    "seg": ("seg_configs/demo/upernet_vit-demo_ade-demo.py", "mIoU"),
}

CLS_RECIPES = {"finetune": "demo_cpu.yaml", "linear_probe": "demo_cpu_linear_probe.yaml"}

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

    print("== 1. demo data (ImageNet folders, ImageFolder transfer split, COCO json, ADE20K png)")
    for line in write_demo_data(data, seed=0):
        print(f"   {line}")

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

    print("== 3. transfer: Mask R-CNN on COCO-format data, UperNet on ADE20K-format data")
    for task, (config, _) in TRANSFER.items():
        for name in RUNS:
            work = out / task / name
            if (work / "metrics.json").is_file() and json.loads((work / "metrics.json").read_text())["finished"]:
                print(f"   {task} from {name}: done earlier, reusing {work}")
                continue
            d = data / ("coco" if task == "det" else "ade20k")
            options = [f"model.backbone.init_cfg.checkpoint={out / 'pretrain' / name / 'weights.pth'}"]
            options += ([f"{k}.dataset.data_root={d}/" for k in ("train_dataloader", "val_dataloader", "test_dataloader")]
                        + ([f"val_evaluator.ann_file={d}/annotations/instances_val2017.json",
                            f"test_evaluator.ann_file={d}/annotations/instances_val2017.json"] if task == "det" else []))
            cmd = [sys.executable, str(REPO / "tools/train.py"), str(REPO / config), "--work-dir", str(work),
                   "--cfg-options", *options]
            print(f"   {task} from {name}: python tools/train.py {config} --work-dir {work} ...")
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if res.returncode != 0:
                print(res.stdout[-3000:])
                return 1

    print("== 4. classification transfer to new classes: fine-tuning and linear probe (cls_configs/demo_cpu*.yaml)")
    sweep = expand({"output_root": str(out / "cls"), "base_dir": str(REPO / "cls_configs"),
                    "recipes": CLS_RECIPES, "datasets": {"transfer": "_base_/demo_data.yaml"},
                    "checkpoints": {n: str(out / "pretrain" / n / "weights.pth") for n in RUNS},
                    "seeds": [0], "flags": ["--data_path", str(data / "transfer")]})
    status = run_sweep(sweep, quiet=True)
    if any(v.startswith("failed") for v in status.values()):
        print(f"   failed: {status}")
        return 1

    print("== 5. each method against the no-dropout baseline (one seed, tiny data: a demo, not a result)")
    rows = {}
    for n in RUNS:
        pre = json.loads((out / "pretrain" / n / "metrics.json").read_text())
        rows[n] = {"method": pre["method"], "ImageNet-style top-1": pre["final"]["top1"]}
        for task, (_, key) in TRANSFER.items():
            m = json.loads((out / task / n / "metrics.json").read_text())["metrics"]
            rows[n][f"{task} {key}"] = m[key] * (100 if key.startswith("coco/") else 1) if key in m else None
        for recipe in CLS_RECIPES:
            m = json.loads((out / "cls" / recipe / "transfer" / n / "seed0" / "metrics.json").read_text())
            rows[n][f"cls {recipe} top-1"] = m["final"]["top1"]
    columns = [c for c in rows["no_dropout"] if c != "method"]
    print(f"   {'pretraining':<42}" + "".join(f"{c:>24}" for c in columns))
    def cell(value, base):
        if value is None:  # the evaluator gave nothing: its metrics.json says why
            return f"{'none':>24}"
        return f"{value:>16.2f}" + (f" ({value - base:+6.2f})" if base is not None else " " * 9)

    for n, r in rows.items():
        print(f"   {r['method']:<42}" + "".join(cell(r[c], rows["no_dropout"][c]) for c in columns))
    if any(v is None for r in rows.values() for v in r.values()):
        print("   none: the evaluator returned no metric (see the note in that run's metrics.json)")
    plot = out / "gradient_diagnostics.png"
    subprocess.run([sys.executable, str(REPO / "tools/analyze_gradients.py"), "plot",
                    *[str(out / "pretrain" / n) for n in RUNS], "--out", str(plot)], check=True)
    print(f"   gradient diagnostics: {plot}")
    print("   records: pretraining dirs hold config.yaml, run.json, log_iter.jsonl, log.jsonl, diagnostics.jsonl, "
          "metrics.json, weights.pth; det/seg work dirs hold run.json, metrics.json, metrics_val.jsonl and "
          "mmengine's config dump and logs; cls run dirs (cls/<recipe>/transfer/<checkpoint>/seed0) hold "
          "config.yaml, run.json, log_iter.jsonl, log.jsonl, metrics.json")
    print(f"demo finished in {time.time() - t0:.0f}s; outputs under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every shipped det/seg recipe config at its real input size, on this machine:
two training iterations and a validation, from a paper-format checkpoint (a
state dict under 'model', no meta), through mmdet's / mmseg's stock
tools/train.py as a new user would run it (``--tool suite``: the suite's
tools/train.py --pretrained), with only the data root, the classes of the
generated data and the loop length overridden.

    .venv/bin/python benchmarks/bench_real_size.py                    # all nine configs
    .venv/bin/python benchmarks/bench_real_size.py --configs det_configs/vit_tiny/mask-rcnn_vit-tiny_fpn_1x_coco.py

Opt-in (minutes per config on a CPU: not part of the test command). The data is
the demo's generated scenes stretched to the real sizes: COCO images of
1333x800 (the largest input mmdet's 1333x800 resize gives), ADE20K images of
683x512 (the size of a 4:3 ADE20K image after the dataset's resize to 512:
validation at 512x683, and the 160k recipe's sliding window or whole-image
inference at that size). Each config runs in its own process (its peak RSS
alone), with dataloader workers off so that the peak is the training process's.
Prints per config: training s/iter (mean of the iterations mmengine logged),
validation s/image, peak RSS, and the validation metric's keys (it ran). Results
go in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import importlib
import json
import runpy
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO, emit, header, run_child

CONFIGS = [
    "det_configs/vit_tiny/mask-rcnn_vit-tiny_fpn_1x_coco.py",
    "det_configs/swin_femto/mask-rcnn_swin-femto_fpn_1x_coco.py",
    "det_configs/convnext_femto/mask-rcnn_convnext-femto_fpn_1x_coco.py",
    "det_configs/vit_tiny/mask-rcnn_vit-tiny_fpn_ms-3x_coco.py",
    "det_configs/swin_femto/mask-rcnn_swin-femto_fpn_ms-3x_coco.py",
    "det_configs/convnext_femto/mask-rcnn_convnext-femto_fpn_ms-3x_coco.py",
    "seg_configs/vit_tiny/upernet_vit-tiny_512x512_160k_ade20k.py",
    "seg_configs/swin_femto/upernet_swin-femto_512x512_160k_ade20k.py",
    "seg_configs/convnext_femto/upernet_convnext-femto_512x512_160k_ade20k.py",
]
COCO_SIZE, ADE_SIZE = (1333, 800), (683, 512)  # (width, height)
BATCH, ITERS = 2, 2


def stretch_coco(root: Path, size) -> None:
    """Resize the generated square images (and their RLE masks and boxes) to ``size``."""
    import numpy as np
    from PIL import Image
    from pycocotools import mask as mask_utils
    for ann_file in (root / "annotations").glob("instances_*.json"):
        data = json.loads(ann_file.read_text())
        split = ann_file.stem.split("_")[1]
        scale = {}
        for img in data["images"]:
            path = root / split / img["file_name"]
            Image.open(path).resize(size, Image.BILINEAR).save(path, quality=90)
            scale[img["id"]] = (size[0] / img["width"], size[1] / img["height"])
            img["width"], img["height"] = size
        for ann in data["annotations"]:
            sx, sy = scale[ann["image_id"]]
            mask = mask_utils.decode(ann["segmentation"])
            mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
            rle = mask_utils.encode(np.asfortranarray(mask))
            ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            x, y, w, h = ann["bbox"]
            ann["bbox"], ann["area"] = [x * sx, y * sy, w * sx, h * sy], float(mask.sum())
        ann_file.write_text(json.dumps(data))


def stretch_ade(root: Path, size) -> None:
    from PIL import Image
    for path in (root / "images").rglob("*.jpg"):
        Image.open(path).resize(size, Image.BILINEAR).save(path, quality=90)
    for path in (root / "annotations").rglob("*.png"):
        Image.open(path).resize(size, Image.NEAREST).save(path)


def prepare(work: Path, val_images: int) -> dict:
    """Generated COCO and ADE20K data at the real sizes, and a paper-format checkpoint per architecture."""
    import timm
    import torch

    import backbones  # noqa: F401  (registers swin_femto)
    from demo_data import write_ade20k, write_coco
    n_train = BATCH * ITERS
    coco, ade = work / "coco", work / "ade20k"
    if not (coco / "ready").is_file():
        write_coco(coco, train_images=n_train, val_images=val_images, size=COCO_SIZE[1], seed=11)
        stretch_coco(coco, COCO_SIZE)
        (coco / "ready").touch()
    if not (ade / "ready").is_file():
        write_ade20k(ade, train_images=n_train, val_images=val_images, size=ADE_SIZE[1], seed=12)
        stretch_ade(ade, ADE_SIZE)
        (ade / "ready").touch()
    checkpoints = {}
    for arch in ("vit_tiny", "swin_femto", "convnext_femto"):
        path = work / f"{arch}_paper.pth"
        if not path.is_file():
            torch.manual_seed(0)
            torch.save({"model": timm.create_model(arch, num_classes=1000).state_dict()}, path)
        checkpoints[arch] = path
    return {"coco": coco, "ade": ade, "checkpoints": checkpoints}


def derived_config(config: str, data: dict, work: Path) -> Path:
    """The config with only the data roots, the generated classes and the loop length changed."""
    cfg = Path(REPO) / config
    lines = [f"_base_ = [{str(cfg)!r}]",
             "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000, save_last=False))"]
    loader = "dict(num_workers=0, persistent_workers=False, dataset=dict({}))"
    if config.startswith("det_"):
        from demo_data import PRETRAIN_CATEGORIES, category_name
        classes = tuple(category_name(c) for c in PRETRAIN_CATEGORIES)
        root, ann = f"{data['coco']}/", f"{data['coco']}/annotations/instances_val2017.json"
        dataset = f"data_root={root!r}, metainfo=dict(classes={classes!r})"
        lines += [f"train_dataloader = {loader.format(dataset)}", f"val_dataloader = {loader.format(dataset)}",
                  f"val_evaluator = dict(ann_file={ann!r})",
                  "train_cfg = dict(max_epochs=1, val_interval=1)"]
    else:
        dataset = f"data_root={str(data['ade'])!r}"
        lines += [f"train_dataloader = {loader.format(dataset)}", f"val_dataloader = {loader.format(dataset)}",
                  f"train_cfg = dict(max_iters={ITERS}, val_interval={ITERS})"]
    path = work / f"real-size_{Path(config).stem}.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_train(tool: str, config: str, derived: Path, run_dir: Path, checkpoint: Path) -> None:
    """tools/train.py of mmdet/mmseg (``stock``) or of the suite, in this process."""
    if tool == "stock":
        package = importlib.import_module("mmdet" if config.startswith("det_") else "mmseg")
        script = Path(package.__file__).parent / ".mim/tools/train.py"
        sys.argv = [str(script), str(derived), "--work-dir", str(run_dir),
                    "--cfg-options", f"model.backbone.init_cfg.checkpoint={checkpoint}"]
        runpy.run_path(str(script), run_name="__main__")
        return
    sys.path.insert(0, str(Path(REPO) / "tools"))
    from train import main as train_main
    rc = train_main([str(derived), "--work-dir", str(run_dir), "--pretrained", str(checkpoint)])
    if rc != 0:
        raise SystemExit(f"{config}: tools/train.py exited {rc}")


def child(config: str, work: Path, val_images: int, tool: str) -> None:
    """One config trained and validated in this process, then its timings from mmengine's scalars."""
    import torch
    data = prepare(work, val_images)
    arch = Path(config).parent.name
    run_dir = work / "runs" / tool / Path(config).stem
    derived = derived_config(config, data, work)
    t0 = time.time()
    run_train(tool, config, derived, run_dir, data["checkpoints"][arch])
    wall = time.time() - t0
    lines = [json.loads(line) for f in run_dir.glob("*/vis_data/scalars.json") for line in f.read_text().splitlines()]
    train = [r["time"] for r in lines if "loss" in r and "time" in r]
    # validation iterations (batch 1: one image each) log a time and no loss; the epoch's metric line has neither
    val = [r["time"] for r in lines if "time" in r and "loss" not in r and "lr" not in r]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    emit({"config": config, "threads": torch.get_num_threads(), "train_iters": len(train),
          "s_per_iter": sum(train) / len(train) if train else None,
          "val_s_per_image": sum(val) / len(val) if val else None, "wall_s": wall,
          "finished": metrics.get("finished"), "metric_keys": sorted(metrics.get("metrics", {}))[:3],
          "note": metrics.get("note", "")})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--work", help="data, checkpoints and run dirs (default: a temporary dir)")
    p.add_argument("--val_images", type=int, default=1)
    p.add_argument("--tool", choices=("stock", "suite"), default="stock",
                   help="mmdet's/mmseg's own tools/train.py (default) or the suite's (--pretrained)")
    p.add_argument("--child", help="(child) run one config")
    a = p.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="real_size_"))
    if a.child:
        child(a.child, work, a.val_images, a.tool)
        return
    print(header(f"det/seg configs at their real input size: {ITERS} training iterations (batch {BATCH}) "
                 f"and {a.val_images} validation image(s) each, CPU, {a.tool} tools/train.py"))
    prepare(work, a.val_images)
    print(f"{'config':<58}{'s/iter':>8}{'val s/img':>11}{'peak RSS':>10}  metrics")
    for config in a.configs:
        r = run_child([Path(__file__), "--child", config, "--work", work, "--val_images", a.val_images,
                       "--tool", a.tool], timeout=3600)
        val = f"{r['val_s_per_image']:.1f}" if r["val_s_per_image"] is not None else "?"
        print(f"{Path(config).stem:<58}{r['s_per_iter']:>8.1f}{val:>11}{r['memory']['rss_mib'] / 1024:>8.1f} GiB"
              f"  {', '.join(r['metric_keys']) or 'none: ' + r['note']} (finished: {r['finished']}, "
              f"{r['wall_s']:.0f} s in all)", flush=True)


if __name__ == "__main__":
    main()

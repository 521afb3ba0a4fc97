"""One real-size training iteration of the transfer models on a GPU: Mask R-CNN 1x
(1333x800, batch 2) and UperNet (512x512, batch 2) for ViT-T, Swin-F and ConvNeXt-F,
built from the suite's own configs (the no-dropout recipes; random weights), with
seconds per iteration and the CUDA peak memory.

    .venv/bin/python benchmarks/bench_gpu_transfer.py [--iters 5] [--json OUT] [--force_cpu]

Each model: 2 untimed iterations (cuDNN autotuning, allocator warm-up), then
``--iters`` timed ones, each ended by a synchronisation; median (min-max) s/iter.
mmdet's ``demo_mm_inputs`` gives the detection batch (3 boxes with masks per image),
random 150-class maps the segmentation one; lr 0 keeps the weights (and so the
proposals) fixed. Without a GPU it says so and measures nothing; ``--force_cpu``
runs the same code on the CPU at 128x96 / 64x64 with one timed iteration (checks
the script, not a number to quote).
"""
from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
import time

import benchlib
from bench_mm_backbone import make_batch, train_step

ARCHS = ("vit_tiny", "swin_femto", "convnext_femto")
PATTERNS = {"det": "det_configs/{arch}/mask-rcnn_*_1x_coco*.py", "seg": "seg_configs/{arch}/upernet_*_ade20k*.py"}


def config_of(task: str, arch: str) -> str:
    """The arch's 1x Mask R-CNN / UperNet config (the no-dropout recipe where there is one per recipe)."""
    found = sorted(glob.glob(PATTERNS[task].format(arch=arch), root_dir=benchlib.REPO))
    if not found:
        raise SystemExit(f"no config matches {PATTERNS[task].format(arch=arch)} in {benchlib.REPO}")
    return next((c for c in found if "no-dropout" in c), found[0])


GPU_SIZE = {"det": (800, 1333), "seg": (512, 512)}   # (height, width): COCO's 1x scale, ADE20K's crop
CPU_SIZE = {"det": (96, 128), "seg": (64, 64)}


def build(task: str, config: str, device):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import backbones.openmmlab  # noqa: F401  (registers TimmDropBackbone)
    cfg = Config.fromfile(f"{benchlib.REPO}/{config}")
    init_default_scope("mmdet" if task == "det" else "mmseg")
    if task == "det":
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
        cfg.model.data_preprocessor.size = None  # no padding to the 512 crop (the GPU batch is 512 already)
        cfg.model.data_preprocessor.size_divisor = 32
    cfg.model.backbone.init_cfg = None  # no pretraining export here: the step's cost, not the transfer
    import torch
    torch.manual_seed(0)
    return MODELS.build(cfg.model).to(device).train()


def to_device(batch, device):
    batch["inputs"] = [x.to(device) for x in batch["inputs"]]
    batch["data_samples"] = [s.to(device) for s in batch["data_samples"]]
    return batch


def measure(task: str, arch: str, device, iters: int) -> dict:
    import torch
    size = (GPU_SIZE if device.type == "cuda" else CPU_SIZE)[task]
    model = build(task, config_of(task, arch), device)
    step = train_step(model, to_device(make_batch(task, size), device))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else None
    return {"task": task, "arch": arch, "config": config_of(task, arch), "size_hw": list(size), "batch": 2,
            "device": str(device),
            "s_iter": statistics.median(times), "s_iter_min": min(times), "s_iter_max": max(times),
            "iters": iters, "cuda_peak_mib": peak}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--force_cpu", action="store_true", help="the CPU at small sizes (checks the script only)")
    a = p.parse_args()
    import torch
    print(benchlib.header("transfer models, one training iteration at real size (Mask R-CNN 1x, UperNet)"))
    if not torch.cuda.is_available() and not a.force_cpu:
        print("no GPU on this machine: nothing measured (--force_cpu checks the script on the CPU)")
        return 0
    device = torch.device("cpu" if a.force_cpu else "cuda")
    iters = 1 if a.force_cpu else a.iters
    results = []
    for task, arch in ((t, a) for t in PATTERNS for a in ARCHS):
        r = measure(task, arch, device, iters)
        results.append(r)
        mem = f"   CUDA peak {r['cuda_peak_mib']:.0f} MiB" if r["cuda_peak_mib"] is not None else ""
        print(f"  {task} {arch:<15} {r['size_hw'][1]}x{r['size_hw'][0]} b2: {r['s_iter']:.3f} s/iter "
              f"({r['s_iter_min']:.3f}-{r['s_iter_max']:.3f}, {iters} iters){mem}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                       "torch": torch.__version__, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

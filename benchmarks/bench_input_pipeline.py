"""Input pipeline: img/s of one DataLoader worker running the ImageNet training
transform, and the workers it takes to feed a ViT-T step at batch 128 on one GPU.

    .venv/bin/python benchmarks/bench_input_pipeline.py [--rounds 6] [--gpu_img_s 850]

The worker's work is the engine's own per-sample path (``SafeImageFolder`` +
``SeededDataset``: JPEG decode, RGB, the per-sample seed) with the transform
of ``pretrain_configs/_base_/imagenet_basic.yaml`` (random-resized crop to
224, flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25, bicubic),
one thread as in a worker, on 64 generated JPEGs of ImageNet's typical
500x375 (quality 90). Decoding alone is timed beside it (alternating).

Workers needed = GPU img/s / per-worker img/s. The GPU figure is measured
when a GPU is present (ViT-T forward + backward + AdamW, batch 128, bf16
autocast); otherwise it is ``--gpu_img_s``, by default 850 img/s: DeiT-Ti's
2536 img/s inference on one V100 (Touvron et al. 2021, Table 1, mixed
precision) divided by 3 for forward + backward. The paper's fp32 recipe is
slower on the GPU, so it needs fewer workers; an A100/H100 needs 2-4x more.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

import benchlib

N_IMAGES = 64
PRESET = f"{benchlib.REPO}/pretrain_configs/vit_tiny_no_dropout.yaml"


def write_jpegs(root: Path) -> None:
    import numpy as np
    from PIL import Image

    from demo_data.scenes import render_scene
    out = root / "train" / "n00000000"
    out.mkdir(parents=True)
    for i in range(N_IMAGES):
        scene = render_scene(np.random.default_rng(i), 500, [i % 12])
        Image.fromarray(scene.image[:375]).save(out / f"img_{i}.JPEG", quality=90)


def cases(root: Path):
    import torch

    from backbones import create_model_with_drop
    from pretrain.config import parse_args
    from training.data import SafeImageFolder, SeededDataset, _load_rgb, build_transforms
    torch.set_num_threads(1)  # as in a DataLoader worker
    args = parse_args(["--config", PRESET, "--data_path", str(root)])
    train_tf, _ = build_transforms(args, create_model_with_drop("vit_tiny"))
    data = SeededDataset(SafeImageFolder(root / "train", train_tf))
    paths = [p for p, _ in data.base.samples]
    seed = [0]

    def transform():
        seed[0] += 1
        for i in range(len(data)):
            data[(i, seed[0] * 1000 + i)]

    def decode():
        for p in paths:
            _load_rgb(p)
    return {"decode+transform": transform, "decode": decode}


def gpu_img_s() -> float:
    """ViT-T training img/s at batch 128 on this machine's GPU (bf16 autocast)."""
    import torch

    from backbones import create_model_with_drop
    device = torch.device("cuda", torch.cuda.current_device())  # only called where a GPU exists
    model = create_model_with_drop("vit_tiny").to(device)
    opt = torch.optim.AdamW(model.parameters(), fused=True)
    x, y = torch.randn(128, 3, 224, 224, device=device), torch.randint(0, 1000, (128,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
    t = benchlib.alternate({"step": step}, 20, warmup=5)["step"]
    return 128 / sorted(t)[len(t) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_rounds_argument(p, 6)
    p.add_argument("--gpu_img_s", type=float, default=850.0)
    benchlib.add_case_arguments(p, threads=False)
    p.add_argument("--root")
    p.add_argument("--json", help="also write the per-worker and GPU figures here (tools/gpu_check.py)")
    a = p.parse_args()
    if a.memory:
        benchlib.mark_baseline()
        cases(Path(a.root))[a.memory]()
        return benchlib.emit({"case": a.memory})
    print(benchlib.header(f"ImageNet training transform per worker ({N_IMAGES} JPEGs 500x375 -> 224, one thread)"))
    import torch
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root)
        cpu: dict = {}
        times = benchlib.alternate(cases(root), a.rounds, cpu=cpu)
        mem = benchlib.memory_of_cases(__file__, list(times), ["--root", root])
    per_image = {k: [t / N_IMAGES for t in v] for k, v in times.items()}
    cpu_per_image = {k: [t / N_IMAGES for t in v] for k, v in cpu.items()}
    print(f"{a.rounds} alternating rounds, per image, median (min-max); wall clock, and CPU time (one thread: "
          "a worker with a core of its own)")
    for name, t in per_image.items():
        c = cpu_per_image[name]
        print(f"  {name:<17} wall {benchlib.spread([1e3 * x for x in t])} ms = {benchlib.spread([1 / x for x in t])}"
              f" img/s   CPU {benchlib.spread([1e3 * x for x in c])} ms = {benchlib.spread([1 / x for x in c])} img/s"
              f"   {benchlib.memory_text(mem[name])}")
    worker = 1 / statistics.median(cpu_per_image["decode+transform"])
    if torch.cuda.is_available():
        need, source = gpu_img_s(), f"measured on {torch.cuda.get_device_name(0)} (bf16 autocast)"
    else:
        need, source = a.gpu_img_s, "no GPU here: DeiT-Ti 2536 img/s inference on a V100 (DeiT Table 1) / 3"
    print(f"  per-worker img/s (CPU time): {worker:.0f}; ViT-T step at batch 128: {need:.0f} img/s = "
          f"{128 / need * 1e3:.0f} ms per step ({source})")
    print(f"  workers to feed it: {need / worker:.1f} -> {math.ceil(need / worker)} "
          f"(each on its own core of this machine's speed)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"per_worker_img_s": worker, "gpu_img_s": need, "gpu_img_s_source": source,
                       "workers_needed": math.ceil(need / worker), "cpus": os.cpu_count(),
                       "per_image_cpu_s": cpu_per_image}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

"""The pretraining engine's update against a bare timm + PyTorch loop on one GPU:
ViT-T and ConvNeXt-F at 224, batch 128, fp32 as the paper and bf16, each fast path
alone and all together, img/s and CUDA peak memory.

    .venv/bin/python benchmarks/bench_gpu_engine.py [--rounds 2] [--updates 10] [--json OUT] [--force_cpu]

Both sides train the same model (same initial weights) with AdamW on the same
in-memory batch, already on the GPU (no loader: the input pipeline has its own
benchmark), one epoch of ``--updates`` updates per call, the sides alternating
(``benchlib.alternate``), after one untimed epoch each (compilation, cuDNN
autotuning). The engine is ``training.engine.Trainer.train_one_epoch`` as the CLI
builds it (per-update lr/wd schedule, drop sites, the one host read per update for
the NaN/inf check and the log, log_iter.jsonl); the bare side is what a user would
write: timm's model, ``torch.optim.AdamW``, timm's ``CosineLRScheduler.step_update``,
autocast where asked. Variants (the engine's flags, the same choice on the bare side):

* ``fp32`` (the paper) and ``bf16`` (``--amp bf16``);
* ``fused`` (``--fused_adamw on``), ``channels_last``, ``compile``: each alone, fp32;
* ``all``: the three together, bf16.

Printed per variant and model: img/s of each side (median, min-max), engine/bare, and
each side's CUDA peak. Without a GPU it says so and measures nothing; ``--force_cpu``
runs the same code on the CPU at 64 px, batch 4, 2 updates (checks the script only).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import benchlib

MODELS = ("vit_tiny", "convnext_femto")
VARIANTS = {  # amp, fused AdamW, channels_last, torch.compile
    "fp32": ("none", False, False, False),
    "bf16": ("bf16", False, False, False),
    "fused": ("none", True, False, False),
    "channels_last": ("none", False, True, False),
    "compile": ("none", False, False, True),
    "all": ("bf16", True, True, True),
}


def sides(name: str, variant: str, device, img: int, batch: int, updates: int, tmp: Path) -> dict:
    import torch
    from timm.scheduler import CosineLRScheduler

    from backbones import DropPlan, DropSites, create_model_with_drop
    from training.engine import Trainer, param_groups
    from training.fast_paths import adamw, compile_model, to_channels_last
    from training.logger import RunLogger
    from training.schedules import CosineSchedule
    amp, fused, nhwc, compiled = VARIANTS[variant]
    dtype = torch.bfloat16 if amp == "bf16" else None
    kw = {"img_size": img} if name.startswith("vit") else {}
    torch.manual_seed(0)
    models = {s: create_model_with_drop(name, **kw).to(device) for s in ("engine", "bare")}
    models["bare"].load_state_dict(models["engine"].state_dict())
    if nhwc:
        models = {s: to_channels_last(m) for s, m in models.items()}
    x = torch.randn(batch, 3, img, img, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    batches = [(x, y)] * updates
    lr, wd, total = 1e-4, 0.05, 1000 * updates
    from pretrain.config import parse_args
    flags = vars(parse_args(["--model", name, "--data_path", "unused", "--output_dir", str(tmp)]))  # the CLI's
    sites = DropSites(models["engine"], name)
    forward = compile_model(models["engine"], sites, changing_rates=False) if compiled else models["engine"]
    run_dir = tmp / f"{name}-{variant}"
    run_dir.mkdir()
    trainer = Trainer(forward, adamw(param_groups(models["engine"], wd), lr, (0.9, 0.999),
                                     "on" if fused else "off", device),
                      torch.nn.CrossEntropyLoss(), sites, DropPlan.from_flags(flags, updates),
                      CosineSchedule(lr, 1e-6, total, updates), CosineSchedule(wd, wd, total), updates, 1, device,
                      RunLogger(run_dir, tensorboard=False), amp_dtype=dtype, print_freq=0, channels_last=nhwc)
    bare_model = models["bare"]
    bare_forward = torch.compile(bare_model) if compiled else bare_model
    bare_opt = torch.optim.AdamW(bare_model.parameters(), lr=lr, weight_decay=wd, **({"fused": True} if fused else {}))
    sched = CosineLRScheduler(bare_opt, t_initial=total, lr_min=1e-6, warmup_t=updates, warmup_lr_init=0.0,
                              t_in_epochs=False)
    criterion = torch.nn.CrossEntropyLoss()
    epoch = {"engine": 0, "bare": 0}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def engine():
        trainer.train_one_epoch(batches, epoch["engine"])
        epoch["engine"] += 1
        sync()

    def bare():
        bare_model.train()
        n = epoch["bare"] * updates
        for inputs, targets in batches:
            if nhwc:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = criterion(bare_forward(inputs), targets)
            loss.backward()
            bare_opt.step()
            bare_opt.zero_grad(set_to_none=True)
            n += 1
            sched.step_update(num_updates=n)
        epoch["bare"] += 1
        sync()
    return {"engine": engine, "bare": bare}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_rounds_argument(p, 2)
    p.add_argument("--updates", type=int, default=10, help="updates per timed epoch")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--json", help="write the results here")
    p.add_argument("--force_cpu", action="store_true", help="the CPU at 64 px, batch 4 (checks the script only)")
    a = p.parse_args()
    import torch
    device = torch.device("cpu" if a.force_cpu or not torch.cuda.is_available() else "cuda")
    img, batch, updates = (64, 4, 2) if device.type == "cpu" else (224, 128, a.updates)
    print(benchlib.header(f"pretraining engine vs a bare timm loop, {img}x{img}, batch {batch}, {device}"))
    if not torch.cuda.is_available() and not a.force_cpu:
        print("no GPU on this machine: nothing measured (--force_cpu checks the script on the CPU)")
        return 0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            for variant in a.variants:
                fns = sides(name, variant, device, img, batch, updates, Path(tmp))
                peaks = {}
                for side, fn in fns.items():  # the untimed epoch; its peak is the side's (one side at a time)
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    fn()
                    peaks[side] = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else None
                times = benchlib.alternate(fns, a.rounds, warmup=0)
                img_s = {s: [batch * updates / t for t in ts] for s, ts in times.items()}
                ratio = benchlib.ratio(img_s["engine"], img_s["bare"])
                results.append({"model": name, "variant": variant, "img": img, "batch": batch, "updates": updates,
                                "rounds": a.rounds, "img_s": img_s, "engine_over_bare": ratio,
                                "cuda_peak_mib": peaks})
                mem = "".join(f"   {s} peak {v:.0f} MiB" for s, v in peaks.items() if v is not None)
                print(f"  {name:<15} {variant:<14} engine {benchlib.spread(img_s['engine'])} img/s   bare "
                      f"{benchlib.spread(img_s['bare'])} img/s   engine/bare {benchlib.spread(ratio)}{mem}",
                      flush=True)
                del fns
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                       "torch": torch.__version__, "median_engine_over_bare": statistics.median(
                           r for x in results for r in x["engine_over_bare"]), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

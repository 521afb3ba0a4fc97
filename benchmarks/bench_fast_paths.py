"""The GPU fast paths (``--fused_adamw``, ``--channels_last``, ``--compile``) and
the cost of the engine's one host read per update, on a GPU.

    .venv/bin/python benchmarks/bench_fast_paths.py [--rounds 10] [--force_cpu]

Without a GPU it says so and measures nothing: these paths exist for GPUs,
and their CPU semantics are tested in ``tests/test_fast_paths.py``
(``--force_cpu`` runs the same code on the CPU at batch 8, to check the script,
not to quote). On a GPU, for ViT-T and ConvNeXt-F at 224, batch 128, fp32 as
the paper (``--amp bf16`` to compare with autocast): a training step
(forward, backward, AdamW, zero_grad, then one synchronisation so that steps
do not overlap the timer), alternating the variants:

* ``baseline``: torch's default AdamW, NCHW, eager;
* ``fused``: ``fused=True`` AdamW; ``channels_last``: NHWC model and inputs;
  ``compile``: ``torch.compile`` (compilation in the warm-up rounds);
* ``read``: the baseline plus the engine's per-update read of the losses and
  the gradient norm (``torch.stack([...]).tolist()``): what the NaN/inf check
  costs. Each variant runs 4 steps per timing without synchronising between
  them, so a read that stalls the queue shows.

Ratios are variant/baseline step time (< 1: faster); CUDA peak memory per variant.
"""
from __future__ import annotations

import argparse
import sys

import benchlib

MODELS = ("vit_tiny", "convnext_femto")
STEPS = 4


def variants(name: str, device, batch: int, amp: str):
    import copy

    import torch
    import torch.nn.functional as F

    from backbones import DropSites, create_model_with_drop
    from training.fast_paths import compile_model, to_channels_last
    torch.manual_seed(0)
    base = create_model_with_drop(name).to(device)
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    dtype = {"bf16": torch.bfloat16, "none": None}[amp]

    def make(fused=False, nhwc=False, compiled=False, read=False):
        model = copy.deepcopy(base)
        inputs = x
        if nhwc:
            model, inputs = to_channels_last(model), x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), **({"fused": True} if fused else {}))
        forward = compile_model(model, DropSites(model, name), changing_rates=False) if compiled else model

        def steps():
            for _ in range(STEPS):
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    loss = F.cross_entropy(forward(inputs), y)
                loss.backward()
                if read:
                    norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
                    torch.stack([loss.detach().float(), norm]).tolist()
                opt.step()
                opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
        return steps
    return {"baseline": make(), "fused": make(fused=True), "channels_last": make(nhwc=True),
            "compile": make(compiled=True), "read": make(read=True)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_rounds_argument(p, 10)
    p.add_argument("--amp", default="none", choices=("none", "bf16"))
    p.add_argument("--force_cpu", action="store_true", help="run on the CPU at batch 8 (checks the script only)")
    a = p.parse_args()
    import torch
    print(benchlib.header("GPU fast paths: fused AdamW, channels_last, torch.compile, the per-update read"))
    if not torch.cuda.is_available() and not a.force_cpu:
        print("no GPU on this machine: the fast paths' speed is measured only on a GPU (nothing measured); "
              "their semantics are covered on the CPU by tests/test_fast_paths.py")
        return
    device = torch.device("cuda" if torch.cuda.is_available() and not a.force_cpu else "cpu")
    batch = 128 if device.type == "cuda" else 8
    for name in MODELS:
        cases = variants(name, device, batch, a.amp)
        peaks = {}
        if device.type == "cuda":  # the CUDA peak of each variant alone (resettable in one process)
            for case, fn in cases.items():
                torch.cuda.reset_peak_memory_stats()
                fn()
                peaks[case] = torch.cuda.max_memory_allocated() / 2 ** 20
        times = benchlib.alternate(cases, a.rounds, warmup=2)
        print(f"\n{name}, batch {batch} at 224, amp {a.amp}, {device}: {STEPS} steps per timing, "
              f"{a.rounds} alternating rounds, ms per step, median (min-max)")
        for case, t in times.items():
            mem = f"   CUDA peak {peaks[case]:.0f} MiB" if peaks else ""
            ratio = "" if case == "baseline" else \
                f"   {case}/baseline {benchlib.spread(benchlib.ratio(t, times['baseline']))}"
            print(f"  {case:<14} {benchlib.spread([1e3 * v / STEPS for v in t])} ms{ratio}{mem}")
    print("\n" + benchlib.memory_text(benchlib.peak_memory()))


if __name__ == "__main__":
    sys.exit(main())

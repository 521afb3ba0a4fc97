"""The paper's gradient diagnostics (grad norm, GDV, GDE, model distance:
``pretrain.diagnostics.measure``) against the forward/backward passes they need.

    .venv/bin/python benchmarks/bench_diagnostics.py [--rounds 6]

One measurement is k train-mode gradients of the compared mini-batches plus
the eval-mode gradient of the reference set; the reference here is exactly
those passes (``torch.autograd.grad`` per batch, same modes, same batches),
without flattening, float64 accumulation, the cosines or the distance to W0.
Demo ViT (4 blocks, 96 wide, patch 8, 64 px, dropout 0.1), k = 8 mini-batches
of 16, a 128-image reference set in batches of 16, CPU, alternating, one
thread by default (CPU time is then the work, whatever the load).
Target: measure / passes <= 1.1. Peak RSS of each in its own process.
"""
from __future__ import annotations

import argparse
import sys

import benchlib

K, BATCH, REFERENCE = 8, 16, 128


def build():
    import torch
    import torch.nn as nn

    from backbones import create_model_with_drop
    torch.manual_seed(0)
    model = create_model_with_drop("vit_tiny", dropout=0.1, img_size=64, patch_size=8, depth=4, embed_dim=96,
                                   num_heads=3, num_classes=12)
    batches = [(torch.randn(BATCH, 3, 64, 64), torch.randint(0, 12, (BATCH,))) for _ in range(K)]
    reference = [(torch.randn(BATCH, 3, 64, 64), torch.randint(0, 12, (BATCH,))) for _ in range(REFERENCE // BATCH)]
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    return model, nn.CrossEntropyLoss(), batches, reference, initial


def cases():
    import torch

    from pretrain.diagnostics import measure
    model, criterion, batches, reference, initial = build()
    params = [p for p in model.parameters() if p.requires_grad]

    def diagnostics():
        measure(model, criterion, batches, reference, "cpu", initial=initial, seed=0)

    def passes():  # the same gradients, nothing else
        for mode, data in ((True, batches), (False, reference)):
            model.train(mode)
            for x, y in data:
                torch.autograd.grad(criterion(model(x), y), params)
    return {"diagnostics": diagnostics, "passes": passes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_rounds_argument(p, 6)
    benchlib.add_case_arguments(p)
    a = p.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    if a.memory:
        benchlib.mark_baseline()
        cases()[a.memory]()
        return benchlib.emit({"case": a.memory})
    print(benchlib.header(f"gradient diagnostics vs the passes they need (demo ViT, {K} x {BATCH} compared, "
                          f"{REFERENCE} reference images, CPU)"))
    cpu: dict = {}
    times = benchlib.alternate(cases(), a.rounds, cpu=cpu)
    mem = benchlib.memory_of_cases(__file__, list(times), ["--threads", a.threads])
    print(f"{a.rounds} alternating rounds, {a.threads} thread(s), seconds, median (min-max), wall clock / CPU")
    for name, t in times.items():
        print(f"  {name:<12} {benchlib.spread(t)} / {benchlib.spread(cpu[name])} s   {benchlib.memory_text(mem[name])}")
    for clock, t in (("wall", times), ("CPU", cpu)):
        print("  " + benchlib.ratio_line(f"diagnostics/passes ({clock})",
                                         benchlib.ratio(t["diagnostics"], t["passes"]), "<= 1.1"))


if __name__ == "__main__":
    sys.exit(main())

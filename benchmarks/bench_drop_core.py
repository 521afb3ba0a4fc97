"""How much the per-iteration drop machinery costs next to a training step.

    .venv/bin/python benchmarks/bench_drop_core.py

Prints, for the paper's models, the time of DropSites.apply + DropPlan lookup
(what every iteration pays) and of one CPU forward/backward of a small batch,
and their ratio. Target: the drop machinery under 1% of a CPU step (and far
less of a GPU step at the paper's batch sizes). Results go in BENCHMARKS.md.
"""
from __future__ import annotations

import torch
from benchlib import timed

from backbones import DropPlan, DropSites, create_model_with_drop

CASES = [("vit_tiny", dict(dropout=0.1), 224), ("vit_base", dict(drop_path=0.4), 224),
         ("swin_femto", dict(dropout=0.1), 224), ("convnext_femto", dict(drop_path=0.1), 224)]


def main() -> None:
    torch.manual_seed(0)
    print(f"{'model':<16}{'sites':>7}{'apply+lookup (us)':>19}{'step, batch 8 (ms)':>20}{'ratio':>10}")
    for name, rates, size in CASES:
        plan = DropPlan.build(drop_mode="early", drop_schedule="linear", cutoff_epoch=50, epochs=300,
                              iters_per_epoch=1251, **rates)
        model = create_model_with_drop(name, **rates)
        sites = DropSites(model, name)
        it = iter(range(10**9))
        per_iter = timed(lambda sites=sites, plan=plan, it=it: sites.apply(*plan(next(it))), 2000)
        x = torch.randn(8, 3, size, size)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)

        def step(opt=opt, model=model, x=x):  # bound now: B023
            opt.zero_grad()
            model(x).mean().backward()
            opt.step()

        step_time = timed(step, 2)
        n = sites.num_dropout + sites.num_drop_path
        print(f"{name:<16}{n:>7}{per_iter * 1e6:>19.1f}{step_time * 1e3:>20.0f}{per_iter / step_time:>10.2e}")


if __name__ == "__main__":
    main()

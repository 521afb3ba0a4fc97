"""End-to-end demo on the CPU.

Stage 1 (this file grows with the suite): build every model of the paper with
its drop sites, and drive the paper's early/late schedules on them, reading the
rates back off the modules.
"""
from __future__ import annotations

import torch

from backbones import PAPER_MODELS, DropPlan, DropSites, create_model_with_drop

# The paper's ImageNet settings (Table 1/2: 300 epochs; early cutoff 50, late 50 for s.d.).
PAPER_RUNS = [
    ("vit_tiny", dict(dropout=0.1, drop_mode="early", drop_schedule="linear", cutoff_epoch=50)),
    ("mixer_s32", dict(dropout=0.1, drop_mode="early", drop_schedule="linear", cutoff_epoch=50)),
    ("swin_femto", dict(dropout=0.1, drop_mode="early", drop_schedule="linear", cutoff_epoch=50)),
    ("convnext_femto", dict(drop_path=0.1, drop_mode="early", drop_schedule="linear", cutoff_epoch=50)),
    ("vit_base", dict(drop_path=0.1, drop_mode="late", drop_schedule="constant", cutoff_epoch=50)),
]


def main() -> None:
    torch.manual_seed(0)
    epochs, ipe = 300, 1251  # ImageNet-1K at batch 1024
    print(f"{'model':<16}{'params':>9}{'dropout sites':>15}{'droppath sites':>16}  schedule")
    for name, kw in PAPER_RUNS:
        plan = DropPlan.build(epochs=epochs, iters_per_epoch=ipe, **kw)
        model = create_model_with_drop(name, dropout=plan.dropout.peak, drop_path=plan.drop_path.peak)
        sites = DropSites(model, name)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name:<16}{params:>8.1f}M{sites.num_dropout:>15}{sites.num_drop_path:>16}  {plan.describe()}")
        for epoch in (0, 25, 49, 50, 299):
            sites.apply(*plan(epoch * ipe))
            d, dp = sites.current()
            print(f"{'':<16}  epoch {epoch:>3}: dropout on model {d:.4f}, deepest drop_path {dp:.4f}")
    print(f"\nregistered paper models: {', '.join(sorted(PAPER_MODELS))}")


if __name__ == "__main__":
    main()

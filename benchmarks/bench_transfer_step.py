"""What a classification-transfer training step costs: full fine-tuning against
the linear probe, with the freezing cls_finetune uses.

    .venv/bin/python benchmarks/bench_transfer_step.py

A linear probe keeps the backbone frozen and in eval mode; since none of its
parameters asks for gradients, autograd records nothing there and the step is
a forward pass plus the head's backward. Target: a linear-probe step at most
half a fine-tuning step (a forward is about a third of forward + backward).
An inference forward (no_grad, eval mode) is printed for reference. Results go
in BENCHMARKS.md.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from benchlib import timed

from backbones import create_model_with_drop
from cls_finetune.main import freeze_backbone, linear_probe_mode, new_head

CASES = [("vit_tiny", 224), ("convnext_femto", 224)]
BATCH, CLASSES = 16, 100


def step_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step():
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return timed(step, 5)


def main() -> None:
    torch.manual_seed(0)
    print(f"{'model':<16}{'fine-tune step':>16}{'linear-probe step':>19}{'inference fwd':>15}{'probe/ft':>10}")
    for name, size in CASES:
        x, y = torch.randn(BATCH, 3, size, size), torch.randint(0, CLASSES, (BATCH,))
        model = create_model_with_drop(name, drop_path=0.1)
        new_head(model, CLASSES)
        model.train()
        finetune = step_time(model, x, y)
        freeze_backbone(model)
        linear_probe_mode(model)
        probe = step_time(model, x, y)
        model.eval()
        with torch.no_grad():
            forward = timed(lambda model=model, x=x: model(x), 5)
        print(f"{name:<16}{finetune * 1e3:>13.0f} ms{probe * 1e3:>16.0f} ms{forward * 1e3:>12.0f} ms"
              f"{probe / finetune:>10.2f}")


if __name__ == "__main__":
    main()

"""A pretraining run: ImageNet-style folders, optional starting weights
(``--finetune``, also what ``--eval`` measures) and the paper's gradient
diagnostics (``diagnostics.jsonl``, ``init_weights.pth``). Everything else is
the shared training run (training/run.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn

from backbones.checkpoint import load_pretrained
from common.files import append_jsonl, read_jsonl
from common.names import DIAGNOSTICS, INIT_WEIGHTS
from training import distributed as D
from training.data import check_image_folder
from training.run import RunContext, RunData, TrainingRun, build_timm_model
from training.state import atomic_save

from .data import build_loaders, diagnostic_batches
from .diagnostics import measure

__all__ = ["PretrainRun", "diagnostics_summary"]

DIAGNOSED = ("gdv", "gde", "grad_norm", "model_distance")
# The paper's early phase: its early dropout acts for the first 50 of 300 epochs, the span of its
# claims about gradient direction (the same window for every method, whatever its own cutoff).
EARLY_PHASE = 50 / 300


def diagnostics_summary(path: Path, until_step: float) -> Optional[dict]:
    """metrics.json's ``diagnostics``: the mean of each measure over the points after the first
    update (step 0 is the same model for every method) up to ``until_step``, and the distance at
    the last of them; None when none was measured."""
    points = [r for r in read_jsonl(path) if 0 < r.get("step", 0) <= until_step] if path.is_file() else []
    if not points:
        return None
    out = {"points": len(points), "first_step": points[0]["step"], "last_step": points[-1]["step"]}
    for key in DIAGNOSED:
        values = [r[key] for r in points if isinstance(r.get(key), (int, float))]
        out[f"{key}_mean"] = sum(values) / len(values) if values else None
    out["model_distance_last"] = points[-1].get("model_distance")
    return out


class PretrainRun(TrainingRun):
    kind = "pretrain"

    def build(self) -> RunData:
        args = self.args
        # The model is needed for its data config; build it first, with the class
        # count read off the train folder.
        classes = check_image_folder(Path(args.data_path) / "train")
        model = build_timm_model(args, len(classes))
        train_set, train_loader, train_sampler, val_loader, self.val_tf = build_loaders(args, model)
        return RunData(model, classes, train_set, train_loader, train_sampler, val_loader,
                       description=f"--data_path {args.data_path}",
                       record={"data_path": str(Path(args.data_path).resolve()), "paper_top1": args.paper_top1})

    def summary(self, ctx: RunContext) -> dict:
        if not self.args.diag_every:
            return {}
        return {"diagnostics": diagnostics_summary(ctx.out / DIAGNOSTICS, EARLY_PHASE * ctx.total_iters)}

    def initial_weights(self, ctx: RunContext) -> Optional[dict]:
        if not self.args.finetune:
            return None
        return load_pretrained(ctx.model, self.args.finetune, keep_head=True,
                               expected_arch=self.args.model).provenance

    def update_hook(self, ctx: RunContext) -> Optional[Callable[[int], None]]:
        """The paper's diagnostics every ``--diag_every`` updates (and before the first) up to
        ``--diag_until_epoch``, measured with the drop rates of the next update, on rank 0."""
        args = self.args
        if not args.diag_every or not D.is_main():
            return None
        init_path = ctx.out / INIT_WEIGHTS
        initial = None
        if not ctx.resuming:
            atomic_save({k: v.detach().cpu().clone() for k, v in ctx.model.named_parameters()}, init_path)
        if init_path.is_file():
            initial = torch.load(init_path, map_location="cpu", weights_only=True)
        else:  # the current weights are not W0: the distance stays unavailable (null)
            print(f"warning: {init_path} is missing (the run was started without --diag_every, or the file was "
                  "removed): diagnostics.jsonl records model_distance as null for the rest of this run")
        minibatches, batches = diagnostic_batches(args, self.val_tf)
        criterion = nn.CrossEntropyLoss()

        def diagnose(step: int) -> None:
            dropout, drop_path = ctx.plan(step)
            ctx.sites.apply(dropout, drop_path)
            rec = measure(ctx.model, criterion, minibatches, batches, ctx.device, initial=initial, seed=args.seed)
            rec = {"step": step, "epoch": step / ctx.iters_per_epoch, "dropout": dropout, "drop_path": drop_path,
                   "model_distance": None, **rec}
            append_jsonl(ctx.out / DIAGNOSTICS, rec)

        if ctx.next_step == 0:
            diagnose(0)
        last = args.diag_until_epoch * ctx.iters_per_epoch or float("inf")
        return lambda step: diagnose(step) if step % args.diag_every == 0 and step <= last else None

"""ImageNet pretraining with per-iteration dropout / stochastic-depth schedules.

    python -m pretrain --model vit_tiny --dropout 0.1 --drop_mode early --cutoff_epoch 50 ...
    torchrun --nproc_per_node 8 -m pretrain --config my_run.yaml

The recipe, checkpoints, resume and run record are shared with classification
transfer (pretrain/driver.py); this file adds ImageNet-style folders, the
``--finetune``/``--eval`` weights and the paper's gradient diagnostics
(``diagnostics.jsonl``, ``init_weights.pth``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, List, Optional

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from backbones import DropPlan, DropSites, NoDropSitesError, UnknownModelError
from backbones.checkpoint import CheckpointError, load_pretrained

from . import distributed as D
from .config import ConfigError, parse_args
from .data import DataError, SafeImageFolder, check_image_folder
from .driver import RunData, TrainingRun, build_timm_model, build_transforms, make_loaders
from .engine import NonFiniteLossError
from .state import atomic_save

USER_ERRORS = (ConfigError, DataError, CheckpointError, NoDropSitesError, UnknownModelError,
               NonFiniteLossError)


build_model = build_timm_model


def build_loaders(args, model: nn.Module):
    root = Path(args.data_path)
    train_tf, val_tf = build_transforms(args, model)
    train = SafeImageFolder(root / "train", train_tf)
    val = SafeImageFolder(root / "val", val_tf)
    if train.classes != val.classes:
        extra = sorted(set(train.classes) ^ set(val.classes))
        raise DataError(f"--data_path {root}: train/ and val/ have different class folders "
                        f"(only in one of them: {', '.join(extra[:10])})")
    train_loader, train_sampler, val_loader = make_loaders(args, train, val)
    return train, train_loader, train_sampler, val_loader, val_tf


def diagnostic_batches(args, eval_tf):
    """(mini-batches compared for GDV/GDE, all batches of the whole-dataset
    gradient): training images without augmentation, a fixed subset and order."""
    from torch.utils.data import Subset
    data = SafeImageFolder(Path(args.data_path) / "train", eval_tf)
    g = torch.Generator().manual_seed(args.seed)
    n = len(data) if not args.diag_samples else min(args.diag_samples, len(data))
    subset = Subset(data, torch.randperm(len(data), generator=g)[:n].tolist())
    batches = list(DataLoader(subset, batch_size=args.batch_size, num_workers=args.num_workers,
                              generator=torch.Generator()))  # leaves the global RNG alone
    if len(batches) < args.diag_batches:
        raise ConfigError(f"--diag_batches {args.diag_batches}: only {len(batches)} batches of "
                          f"--batch_size {args.batch_size} in the --diag_samples {n} images")
    return batches[:args.diag_batches], batches


def make_diagnostics(args, model: nn.Module, sites: DropSites, eval_tf, out: Path, device, resuming: bool,
                     plan: DropPlan):
    """A function ``diagnose(step)`` that measures the paper's diagnostics after
    ``step`` updates, with the drop rates of update ``step`` (the next update
    sets the same), and appends them to diagnostics.jsonl; None when off or
    not rank 0."""
    if not args.diag_every or not D.is_main():
        return None
    from .diagnostics import measure
    init_path = out / "init_weights.pth"
    if not resuming or not init_path.is_file():
        atomic_save({k: v.detach().cpu().clone() for k, v in model.named_parameters()}, init_path)
    initial = torch.load(init_path, map_location="cpu", weights_only=True)
    minibatches, batches = diagnostic_batches(args, eval_tf)
    criterion = nn.CrossEntropyLoss()

    def diagnose(step: int) -> None:
        dropout, drop_path = plan(step)
        sites.apply(dropout, drop_path)
        rec = measure(model, criterion, minibatches, batches, device, initial=initial, seed=args.seed)
        rec = {"step": step, "epoch": step / plan.dropout.iters_per_epoch,
               "dropout": dropout, "drop_path": drop_path, **rec}
        with open(out / "diagnostics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    return diagnose


class PretrainRun(TrainingRun):
    kind = "pretrain"

    def build(self) -> RunData:
        args = self.args
        # The model is needed for its data config; build it first, with the class
        # count read off the train folder.
        classes = check_image_folder(Path(args.data_path) / "train")
        model = build_model(args, len(classes))
        train_set, train_loader, train_sampler, val_loader, self.val_tf = build_loaders(args, model)
        return RunData(model, classes, train_set, train_loader, train_sampler, val_loader,
                       description=f"--data_path {args.data_path}")

    def initial_weights(self, model: nn.Module) -> Optional[dict]:
        if not self.args.finetune:
            return None
        return load_pretrained(model, self.args.finetune, keep_head=True,
                               expected_arch=self.args.model).provenance

    def record(self) -> dict:
        return {"data_path": str(Path(self.args.data_path).resolve())}

    def update_hook(self, next_step: int) -> Optional[Callable[[int], None]]:
        diagnose = make_diagnostics(self.args, self.model, self.sites, self.val_tf, self.out, self.device,
                                    self.resuming, self.plan)
        if diagnose is None:
            return None
        if next_step == 0:
            diagnose(0)
        every = self.args.diag_every
        return lambda step: diagnose(step) if step % every == 0 else None


def run(args) -> dict:
    return PretrainRun(args).run()


def report_user_errors(entry: Callable[[], object], errors=USER_ERRORS) -> int:
    """Run ``entry``; a user error becomes one line on stderr and exit code 2."""
    try:
        entry()
        return 0
    except errors as exc:
        # Errors raised in a DataLoader worker arrive wrapped with its traceback: keep the message.
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        msg = msg.split("Error: ", 1)[-1] if msg.startswith(("pretrain.", "backbones.", "cls_finetune.")) else msg
        print(f"error: {msg}", file=sys.stderr)
        return 2
    finally:
        D.cleanup()


def main(argv: Optional[List[str]] = None) -> int:
    return report_user_errors(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

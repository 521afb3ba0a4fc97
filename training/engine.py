"""One training epoch and one evaluation pass, shared by pretraining and
classification transfer. Everything that changes per update (learning rate,
weight decay, dropout, drop path) is set here from O(1) schedules indexed by the
global update number, so a resumed run continues them exactly."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from backbones import DropPlan, DropSites
from backbones import layer_decay as layer_decay_lib
from backbones.errors import UserError

from . import distributed as D
from .logger import RunLogger
from .schedules import CosineSchedule


class NonFiniteLossError(UserError):
    """The loss became NaN or infinite: training stops before the bad update."""


def amp_dtype_for(choice: str, device: torch.device) -> Optional[torch.dtype]:
    if choice == "none":
        return None
    if choice == "fp16":
        return torch.float16
    if choice == "bf16":
        return torch.bfloat16
    # auto: bf16 on GPUs that have it; fp32 on CPUs, where bf16 is often slower.
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float = 1.0):
    """Trainable parameters in optimizer groups (the rule: backbones/layer_decay.py).
    ``Trainer`` multiplies the scheduled lr and wd by each group's ``lr_scale``/``wd_scale``."""
    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    use_layers = layer_decay < 1
    groups = layer_decay_lib.param_groups(
        model.named_parameters(), weight_decay, layer_decay, skip=skip,
        layer_of=(lambda name: layer_decay_lib.layer_id(model, name)) if use_layers else None,
        num_layers=layer_decay_lib.num_layers(model) if use_layers else 0)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    return groups


@dataclass
class Trainer:
    model: nn.Module                 # possibly DDP-wrapped
    optimizer: torch.optim.Optimizer
    criterion: Callable
    sites: DropSites
    plan: DropPlan
    lr_schedule: CosineSchedule
    wd_schedule: CosineSchedule
    iters_per_epoch: int
    update_freq: int
    device: torch.device
    logger: RunLogger
    amp_dtype: Optional[torch.dtype] = None
    scaler: Optional[torch.amp.GradScaler] = None
    ema: Optional[nn.Module] = None
    mixup_fn: Optional[Callable] = None
    clip_grad: Optional[float] = None
    print_freq: int = 50
    # Called after an update with the number of the next update; saves when it wants to.
    on_update: Optional[Callable[[int], None]] = None
    # Puts the model in training mode (a linear probe keeps its frozen backbone in eval mode).
    train_mode: Optional[Callable[[nn.Module], None]] = None
    channels_last: bool = False      # inputs in NHWC (--channels_last)

    @property
    def unwrapped(self) -> nn.Module:
        model = getattr(self.model, "_orig_mod", self.model)  # torch.compile's wrapper, then DDP's
        return getattr(model, "module", model)

    def set_hyperparams(self, step: int) -> None:
        lr, wd = self.lr_schedule(step), self.wd_schedule(step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
            g["weight_decay"] = wd * g.get("wd_scale", 1.0)
        self.sites.apply(*self.plan(step))

    def train_one_epoch(self, loader, epoch: int, start_step: int = 0) -> float:
        """Run updates ``start_step .. iters_per_epoch-1`` of ``epoch``; the loader
        must already skip the micro-batches of the updates before ``start_step``."""
        if self.train_mode is not None:
            self.train_mode(self.model)
        else:
            self.model.train()
        total = self.lr_schedule.total_iters
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        step_in_epoch, micro, loss_sum, n_updates, micro_losses = start_step, 0, 0.0, 0, []
        self.optimizer.zero_grad(set_to_none=True)
        for samples, targets in loader:
            if step_in_epoch >= self.iters_per_epoch:
                break
            step = epoch * self.iters_per_epoch + step_in_epoch
            if micro == 0:
                self.set_hyperparams(step)
            samples = samples.to(self.device, non_blocking=True)
            if self.channels_last and samples.dim() == 4:
                samples = samples.contiguous(memory_format=torch.channels_last)
            targets = targets.to(self.device, non_blocking=True)
            if self.mixup_fn is not None:
                samples, targets = self.mixup_fn(samples, targets)
            last_micro = micro == self.update_freq - 1
            sync = contextlib.nullcontext() if last_micro or not hasattr(self.model, "no_sync") \
                else self.model.no_sync()
            with sync:
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):
                    loss = self.criterion(self.model(samples), targets)
                scaled = loss / self.update_freq
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            # Kept on the device: the update reads the losses and the gradient norm in one sync.
            micro_losses.append(loss.detach().float())
            micro += 1
            if not last_micro:
                continue
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            if self.clip_grad:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, self.clip_grad)
            else:  # the norm alone: clipping at inf would multiply every gradient by 1
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            # The one host-device sync of an update: micro-batch losses and the norm.
            *loss_values, grad_norm = torch.stack([*micro_losses, grad_norm.float()]).tolist()
            bad = next((v for v in loss_values if not math.isfinite(v)), None)
            if bad is not None:
                raise NonFiniteLossError(
                    f"loss is {bad} at epoch {epoch}, update {step}: training stopped "
                    "before applying it; checkpoints written so far are untouched")
            if self.scaler is None and not math.isfinite(grad_norm):
                raise NonFiniteLossError(
                    f"gradient norm is {grad_norm} at epoch {epoch}, update {step}: training stopped "
                    "before applying it; checkpoints written so far are untouched")
            if self.scaler:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.unwrapped, step=step)
            dropout, drop_path = self.sites.current()
            update_loss = sum(loss_values) / len(loss_values)
            rec = {"epoch": epoch, "step": step, "loss": update_loss,
                   # the scheduled values; a group's own are these times its lr_scale / wd_scale
                   "lr": self.lr_schedule(step), "weight_decay": self.wd_schedule(step),
                   "dropout": dropout, "drop_path": drop_path, "grad_norm": grad_norm}
            self.logger.iteration(rec)
            loss_sum, n_updates = loss_sum + update_loss, n_updates + 1
            micro, micro_losses = 0, []
            step_in_epoch += 1
            if self.print_freq and (step_in_epoch % self.print_freq == 0 or step_in_epoch == self.iters_per_epoch):
                self.logger.progress(step + 1, total, f"epoch {epoch} loss {update_loss:.4f} lr {rec['lr']:.2e} "
                                     f"dropout {dropout:.3f} drop_path {drop_path:.3f}")
            if self.on_update is not None:
                self.on_update(step + 1)
        if step_in_epoch < self.iters_per_epoch:
            raise RuntimeError(f"the loader ran out after {step_in_epoch} of {self.iters_per_epoch} updates")
        return loss_sum / max(n_updates, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device,
             amp_dtype: Optional[torch.dtype] = None) -> dict:
    """Top-1, top-5 (when there are more than 5 classes) and mean cross-entropy,
    summed over all ranks."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, n
    num_classes = None
    for samples, targets in loader:
        samples, targets = samples.to(device), targets.to(device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(samples)
        logits = logits.float()
        num_classes = logits.shape[1]
        k = min(5, num_classes)
        topk = logits.topk(k, dim=1).indices
        hit = topk.eq(targets[:, None])
        sums += torch.stack([F.cross_entropy(logits, targets, reduction="sum").double(),
                             hit[:, 0].sum().double(), hit.any(dim=1).sum().double(),
                             torch.tensor(float(len(targets)), dtype=torch.float64, device=device)])
    D.all_reduce_sum(sums)
    n = max(sums[3].item(), 1.0)
    out = {"top1": 100.0 * sums[1].item() / n, "loss": sums[0].item() / n, "n": int(sums[3].item())}
    if num_classes is None or num_classes > 5:
        out["top5"] = 100.0 * sums[2].item() / n
    return out

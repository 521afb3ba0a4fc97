"""The paper's gradient diagnostics (Section 3 of Liu et al., 2023).

* gradient norm: ``||g||_2`` of a mini-batch gradient;
* model distance: ``||W - W_0||_2`` to the initial weights;
* gradient direction variance (GDV): the mean pairwise cosine distance
  ``(1 - cos(g_i, g_j)) / 2`` over a set of mini-batch gradients;
* gradient direction error (GDE): the mean ``(1 - cos(g_i, G)) / 2`` between
  mini-batch gradients (model in train mode, dropout on) and the whole-dataset
  gradient ``G`` (model in eval mode, dropout off).

Gradients are flattened over all trainable parameters. Measuring runs under an
isolated RNG, so a run that measures trains exactly like one that does not.

The estimator (``pretrain/data.py`` picks the images): the k compared
mini-batches are fixed training images (no augmentation), and ``G`` is the mean
eval-mode gradient over a *disjoint* reference set of N training images
(``--diag_samples``; 0: every image but the compared ones). The paper takes ``G``
over the whole training set. A finite N makes ``G`` the whole-set gradient plus
sampling noise of variance about sigma^2/N (sigma^2: per-image gradient
variance), which can only lower the expected cosine to it: GDE is biased
*upwards*, by an amount that shrinks as 1/N, and alike for every run measured
with the same N and seed. A reference set that contained the compared
mini-batches would instead share their images with ``G`` (a batch of B images
makes up B/N of it) and bias GDE *downwards*, by an amount that depends on how
far the dropout-on mini-batch gradient is from its own dropout-off term in ``G``,
i.e. on the drop rate being compared; hence the disjoint sets.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Sequence

import torch
import torch.nn as nn

__all__ = ["flat_gradient", "model_distance", "direction_variance", "direction_error",
           "dataset_gradient", "measure"]


def _params(model: nn.Module) -> List[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def flat_gradient(model: nn.Module, criterion: Callable, samples: torch.Tensor,
                  targets: torch.Tensor, reduction_weight: float = 1.0) -> torch.Tensor:
    """Gradient of ``criterion(model(samples), targets)`` as one flat float64 vector
    (the model's own .grad buffers are left untouched)."""
    params = _params(model)
    loss = criterion(model(samples), targets) * reduction_weight
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).double()
                      for g, p in zip(grads, params)])


def model_distance(model: nn.Module, initial: Dict[str, torch.Tensor]) -> float:
    """``||W - W_0||_2`` over trainable parameters (names as in ``named_parameters``)."""
    total = 0.0
    for name, p in model.named_parameters():
        if p.requires_grad:
            total += (p.detach().double() - initial[name].to(p.device).double()).pow(2).sum().item()
    return total ** 0.5


def _unit(vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    stacked = torch.stack(list(vectors))
    return stacked / stacked.norm(dim=1, keepdim=True).clamp_min(1e-30)


def direction_variance(grads: Sequence[torch.Tensor]) -> float:
    """Mean over pairs i < j of (1 - cos(g_i, g_j)) / 2."""
    if len(grads) < 2:
        raise ValueError("gradient direction variance needs at least two gradients")
    u = _unit(grads)
    cos = u @ u.T
    k = len(grads)
    iu = torch.triu_indices(k, k, offset=1)
    return ((1 - cos[iu[0], iu[1]]) / 2).mean().item()


def direction_error(grads: Sequence[torch.Tensor], reference: torch.Tensor) -> float:
    """Mean over i of (1 - cos(g_i, reference)) / 2."""
    u = _unit(grads)
    r = reference / reference.norm().clamp_min(1e-30)
    return ((1 - u @ r) / 2).mean().item()


def dataset_gradient(model: nn.Module, criterion: Callable, batches: Iterable, device) -> torch.Tensor:
    """Gradient of the mean loss over all samples of ``batches``, in eval mode.
    ``criterion`` must average over its batch; batches are weighted by size."""
    was_training = model.training
    model.eval()
    total, n = None, 0
    for samples, targets in batches:
        samples, targets = samples.to(device), targets.to(device)
        g = flat_gradient(model, criterion, samples, targets, reduction_weight=float(len(targets)))
        total = g if total is None else total + g
        n += len(targets)
    model.train(was_training)
    return total / n


def measure(model: nn.Module, criterion: Callable, minibatches: Sequence, full_batches: Iterable,
            device, initial: Dict[str, torch.Tensor] = None, seed: int = 0) -> dict:
    """All four measures at the model's current weights. ``minibatches`` are the
    (samples, targets) pairs whose train-mode gradients are compared."""
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        was_training = model.training
        model.train()
        grads = [flat_gradient(model, criterion, x.to(device), y.to(device)) for x, y in minibatches]
        model.train(was_training)
        full = dataset_gradient(model, criterion, full_batches, device)
    out = {"grad_norm": float(torch.stack([g.norm() for g in grads]).mean()),
           "gdv": direction_variance(grads), "gde": direction_error(grads, full)}
    if initial is not None:
        out["model_distance"] = model_distance(model, initial)
    return out

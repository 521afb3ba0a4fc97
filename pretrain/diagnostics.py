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

from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ["flat_gradient", "model_distance", "direction_variance", "direction_error",
           "dataset_gradient", "measure"]


def _params(model: nn.Module) -> List[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _gradients(model: nn.Module, criterion: Callable, samples: torch.Tensor, targets: torch.Tensor,
               weight: float = 1.0) -> List[Optional[torch.Tensor]]:
    """Per trainable parameter, the gradient of ``weight * criterion(model(samples), targets)``
    (None where the loss does not reach it), without touching the model's .grad buffers."""
    loss = criterion(model(samples), targets) * weight
    return list(torch.autograd.grad(loss, _params(model), allow_unused=True))


def flat_gradient(model: nn.Module, criterion: Callable, samples: torch.Tensor,
                  targets: torch.Tensor, reduction_weight: float = 1.0,
                  out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gradient of ``criterion(model(samples), targets)`` as one flat float64 vector,
    written into ``out`` when given (the model's own .grad buffers are left untouched)."""
    grads = _gradients(model, criterion, samples, targets, reduction_weight)
    flat = [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, _params(model))]
    if out is None:
        out = torch.empty(sum(f.numel() for f in flat), dtype=torch.float64, device=flat[0].device)
    return torch.cat(flat, out=out)  # cast to float64 on the way in


def model_distance(model: nn.Module, initial: Dict[str, torch.Tensor]) -> float:
    """``||W - W_0||_2`` over trainable parameters (names as in ``named_parameters``)."""
    total = 0.0
    for name, p in model.named_parameters():
        if p.requires_grad:
            total += (p.detach().double() - initial[name].to(p.device).double()).pow(2).sum().item()
    return total ** 0.5


def _gram(rows: torch.Tensor) -> torch.Tensor:
    """All pairwise dot products of the rows in one product (one pass over the long
    vectors; norms and cosines then come from this k x k matrix)."""
    return rows @ rows.T


def _cosines(gram: torch.Tensor) -> torch.Tensor:
    norms = gram.diagonal().clamp_min(0).sqrt().clamp_min(1e-30)
    return gram / torch.outer(norms, norms)


def _gdv(cos: torch.Tensor) -> float:
    """Mean (1 - cos) / 2 over the pairs i < j of a k x k cosine matrix."""
    iu = torch.triu_indices(len(cos), len(cos), offset=1)
    return ((1 - cos[iu[0], iu[1]]) / 2).mean().item()


def _gde(cos: torch.Tensor) -> float:
    """Mean (1 - cos) / 2 between the reference (last row/column) and each other vector."""
    return ((1 - cos[:-1, -1]) / 2).mean().item()


def direction_variance(grads: Sequence[torch.Tensor]) -> float:
    """Mean over pairs i < j of (1 - cos(g_i, g_j)) / 2."""
    if len(grads) < 2:
        raise ValueError("gradient direction variance needs at least two gradients")
    return _gdv(_cosines(_gram(torch.stack(list(grads)))))


def direction_error(grads: Sequence[torch.Tensor], reference: torch.Tensor) -> float:
    """Mean over i of (1 - cos(g_i, reference)) / 2."""
    return _gde(_cosines(_gram(torch.stack([*grads, reference]))))


def dataset_gradient(model: nn.Module, criterion: Callable, batches: Iterable, device,
                     out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gradient of the mean loss over all samples of ``batches``, in eval mode
    (accumulated in float64, into ``out`` when given). ``criterion`` must average
    over its batch; batches are weighted by size."""
    params = _params(model)
    sizes = [p.numel() for p in params]
    total = out if out is not None else torch.empty(sum(sizes), dtype=torch.float64, device=device)
    total.zero_()
    was_training = model.training
    model.eval()
    n, pieces = 0, total.split(sizes)
    for samples, targets in batches:
        grads = _gradients(model, criterion, samples.to(device), targets.to(device), float(len(targets)))
        for piece, g in zip(pieces, grads):
            if g is not None:
                piece.add_(g.reshape(-1))
        n += len(targets)
    model.train(was_training)
    if n == 0:
        raise ValueError("the whole-dataset gradient needs at least one sample")
    return total.div_(n)


def measure(model: nn.Module, criterion: Callable, minibatches: Sequence, full_batches: Iterable,
            device, initial: Dict[str, torch.Tensor] = None, seed: int = 0) -> dict:
    """All four measures at the model's current weights. ``minibatches`` are the
    (samples, targets) pairs whose train-mode gradients are compared."""
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        was_training = model.training
        model.train()
        # The k mini-batch gradients and G as the rows of one float64 matrix: its Gram
        # matrix gives the norms, GDV and GDE in one product, with no further copies.
        k = len(minibatches)
        if k < 2:
            raise ValueError("gradient direction variance needs at least two mini-batches")
        rows = torch.empty(k + 1, sum(p.numel() for p in _params(model)), dtype=torch.float64, device=device)
        for row, (x, y) in zip(rows, minibatches):
            flat_gradient(model, criterion, x.to(device), y.to(device), out=row)
        model.train(was_training)
        dataset_gradient(model, criterion, full_batches, device, out=rows[k])
    gram = _gram(rows)
    del rows
    cos = _cosines(gram)
    out = {"grad_norm": gram.diagonal()[:k].sqrt().mean().item(), "gdv": _gdv(cos[:k, :k]), "gde": _gde(cos)}
    if initial is not None:
        out["model_distance"] = model_distance(model, initial)
    return out

"""GPU fast paths behind flags (``--fused_adamw``, ``--channels_last``,
``--compile``). Every default keeps the paper's recipe exactly: torch's plain
AdamW, contiguous NCHW tensors, eager execution. Their speed is measured in
``benchmarks/bench_fast_paths.py`` (on a GPU only); their semantics are tested
on the CPU (``tests/test_fast_paths.py``).
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

from backbones import DropSites

__all__ = ["ADAMW_CHOICES", "adamw", "adamw_kwargs", "to_channels_last", "compile_model"]

# off: torch's default AdamW, as the paper's runs; auto: fused on CUDA, foreach
# elsewhere; on: the fused kernel wherever torch has one (CUDA, and CPU);
# foreach: the multi-tensor implementation.
ADAMW_CHOICES = ("off", "auto", "on", "foreach")


def adamw_kwargs(choice: str, device: torch.device) -> dict:
    """The ``fused`` / ``foreach`` arguments of ``torch.optim.AdamW`` for ``--fused_adamw``."""
    if choice == "off":
        return {}
    if choice == "on" or (choice == "auto" and device.type == "cuda"):
        return {"fused": True}
    if choice in ("auto", "foreach"):
        return {"foreach": True}
    raise ValueError(f"--fused_adamw {choice!r}: choose one of {', '.join(ADAMW_CHOICES)}")


def adamw(groups: Iterable, lr: float, betas, choice: str, device: torch.device) -> torch.optim.AdamW:
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), **adamw_kwargs(choice, device))


def to_channels_last(model: nn.Module) -> nn.Module:
    """NHWC weights for convolutions (cuDNN's fast layout on tensor cores; ConvNeXt
    gains most, a ViT only in its patch embedding). Inputs follow in the Trainer."""
    return model.to(memory_format=torch.channels_last)


def compile_model(model: nn.Module, sites: DropSites, changing_rates: bool, backend: str = "inductor") -> nn.Module:
    """``torch.compile(model)``. Dynamo guards on every module's float
    attributes, so a drop rate that changes every update (linear, cosine,
    curriculum schedules) would recompile the model at every update; with
    ``changing_rates`` the drop sites run eagerly between compiled regions
    instead (they then also draw from the same RNG as eager execution).
    The returned module shares its parameters with ``model``: save ``model``."""
    if changing_rates:
        modules = list(sites.dropouts) + [m for m, _ in sites.drop_paths]
        for m in modules:
            # an instance attribute shadows the class's forward for this module only
            m.forward = torch.compiler.disable(m.forward)
    return torch.compile(model, backend=backend)

"""Set dropout and stochastic-depth rates on a built model, every iteration.

``DropSites(model)`` walks the model once and remembers

* every ``nn.Dropout`` outside the classifier head, plus the float
  ``attn_drop_p`` some timm attention blocks pass to fused attention
  (most read ``self.attn_drop.p`` at call time, which the module update covers);
* every timm ``DropPath`` with its *relative depth*: its construction-time rate
  divided by the largest one. timm spreads stochastic depth linearly over depth
  when it builds ViT, Swin and ConvNeXt, and ``create_model_with_drop`` gives
  MLP-Mixer the paper's linear spread too (timm's own is uniform); keeping the
  ratios reproduces that spread for any rate set later.

``sites.apply(dropout, drop_path)`` is then a loop over a few lists: cheap
enough for every iteration.

The classifier head's dropout (timm's ``head_drop`` / ``head.drop``) is left
alone: the paper's dropout lives in the network body, and downstream backbones
have no head. So are the ``nn.Dropout(0)`` placeholders timm's shared ``Mlp``
puts inside blocks of architectures that have no dropout (ConvNeXt): using
them would be a new architecture, not the paper's.
"""
from __future__ import annotations

from typing import List, Tuple

import torch.nn as nn
from timm.layers import DropPath
from timm.models.convnext import ConvNeXtBlock

from .errors import UserError

__all__ = ["DropSites", "NoDropSitesError"]


class NoDropSitesError(UserError, ValueError):
    """A non-zero rate was requested for a kind of site the model does not have."""


# Blocks whose nn.Dropout modules are placeholders, not part of the architecture.
BLOCKS_WITHOUT_DROPOUT = (ConvNeXtBlock,)


def _is_head(name: str) -> bool:
    first = name.split(".", 1)[0]
    return first in ("head", "head_drop", "fc", "classifier")


class DropSites:
    def __init__(self, model: nn.Module, model_name: str = ""):
        self.model_name = model_name or type(model).__name__
        self.dropouts: List[nn.Dropout] = []
        self.fused_attn: List[nn.Module] = []  # modules holding a float `attn_drop_p`
        self.drop_paths: List[Tuple[DropPath, float]] = []
        peak = 0.0
        paths = []
        placeholders = {id(sub) for block in model.modules() if isinstance(block, BLOCKS_WITHOUT_DROPOUT)
                        for sub in block.modules() if isinstance(sub, nn.Dropout)}
        for name, module in model.named_modules():
            if _is_head(name):
                continue
            if isinstance(module, nn.Dropout) and id(module) not in placeholders:
                self.dropouts.append(module)
            elif isinstance(module, DropPath):
                paths.append(module)
                peak = max(peak, float(module.drop_prob))
            if isinstance(getattr(module, "attn_drop_p", None), float):
                self.fused_attn.append(module)
        if paths and peak == 0.0:
            raise NoDropSitesError(
                f"{self.model_name}: its DropPath modules were all built with rate 0, so the "
                "spread over depth is unknown; build the model with a non-zero drop_path_rate")
        self.drop_paths = [(m, float(m.drop_prob) / peak) for m in paths]

    @property
    def num_dropout(self) -> int:
        return len(self.dropouts)

    @property
    def num_drop_path(self) -> int:
        return len(self.drop_paths)

    def check(self, dropout: float, drop_path: float) -> None:
        """Fail if a non-zero rate has nowhere to go (e.g. dropout on ConvNeXt)."""
        if dropout > 0 and not self.dropouts:
            raise NoDropSitesError(
                f"{self.model_name} has no dropout sites (no nn.Dropout outside its head), "
                f"so dropout={dropout} would do nothing; use drop_path (stochastic depth) instead")
        if drop_path > 0 and not self.drop_paths:
            raise NoDropSitesError(
                f"{self.model_name} has no stochastic-depth (DropPath) sites, so drop_path={drop_path} "
                "would do nothing; build it with a non-zero drop_path_rate (create_model_with_drop does)")

    def apply(self, dropout: float, drop_path: float) -> None:
        for m in self.dropouts:
            m.p = dropout
        for m in self.fused_attn:
            m.attn_drop_p = dropout
        for m, ratio in self.drop_paths:
            m.drop_prob = drop_path * ratio

    def current(self) -> Tuple[float, float]:
        """The rates now on the model: (dropout, deepest DropPath's rate)."""
        dropout = self.dropouts[0].p if self.dropouts else 0.0
        drop_path = 0.0
        for m, ratio in self.drop_paths:
            if ratio == 1.0:
                drop_path = float(m.drop_prob)
                break
        return dropout, drop_path

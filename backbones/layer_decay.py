"""Layer ids of a timm model, for layer-wise learning-rate decay (BEiT, ConvNeXt
and Swin fine-tuning recipes). One definition for the whole suite: the
classification fine-tuner and the OpenMMLab optimizer constructor both use it.

Layer 0 is the stem and the embeddings, layer ``i + 1`` the ``i``-th block in
depth order (a stage's downsampling layer counts with the stage's first block),
and layer ``num_layers(model) + 1`` everything after the blocks (final norm,
classifier head, or a detector's neck and heads). A parameter of layer ``i``
gets ``lr * rate ** (num_layers + 1 - i)``.
"""
from __future__ import annotations

from typing import Callable, Collection, Iterable, List, Optional, Tuple

import torch.nn as nn

__all__ = ["block_prefixes", "num_layers", "layer_id", "lr_scale", "check_rate", "no_weight_decay", "param_groups",
           "NO_DECAY_NAMES"]

# Tokens and tables that, like biases and norms, get no weight decay.
NO_DECAY_NAMES = ("cls_token", "pos_embed", "reg_token", "relative_position_bias_table", "absolute_pos_embed")
_STEM = ("patch_embed", "cls_token", "pos_embed", "reg_token", "stem", "absolute_pos_embed")


def block_prefixes(model: nn.Module) -> List[str]:
    """Parameter-name prefixes of the model's blocks, in depth order."""
    if isinstance(getattr(model, "blocks", None), nn.Sequential):  # ViT, Mixer
        return [f"blocks.{i}." for i in range(len(model.blocks))]
    for attr in ("layers", "stages"):  # Swin, ConvNeXt
        stages = getattr(model, attr, None)
        if isinstance(stages, nn.Sequential) and all(hasattr(s, "blocks") for s in stages):
            return [f"{attr}.{i}.blocks.{j}." for i, stage in enumerate(stages) for j in range(len(stage.blocks))]
    raise ValueError(f"layer-wise lr decay: no blocks found in {type(model).__name__} (expected "
                     "'blocks' as in ViT/Mixer, or 'layers'/'stages' of blocks as in Swin/ConvNeXt)")


def num_layers(model: nn.Module) -> int:
    return len(block_prefixes(model))


def layer_id(model: nn.Module, name: str) -> int:
    """Layer of parameter ``name`` (relative to ``model``)."""
    if name.startswith(_STEM):
        return 0
    blocks = block_prefixes(model)
    for i, prefix in enumerate(blocks):
        if name.startswith(prefix):
            return i + 1
    for i, prefix in enumerate(blocks):
        if name.startswith(prefix.rsplit("blocks.", 1)[0] + "downsample"):
            return i + 1
    return len(blocks) + 1


def check_rate(rate: float) -> float:
    if not 0 < rate <= 1:
        raise ValueError(f"layer decay rate {rate} must lie in (0, 1]")
    return rate


def lr_scale(model: nn.Module, name: str, rate: float) -> float:
    return check_rate(rate) ** (num_layers(model) + 1 - layer_id(model, name))


def no_weight_decay(name: str, param: nn.Parameter, skip: Collection[str] = ()) -> bool:
    """timm's convention: no weight decay on biases, norms and other 1-D parameters,
    tokens and position tables (``NO_DECAY_NAMES``), and what the model names in ``skip``."""
    return param.ndim <= 1 or name.endswith(".bias") or name in skip or name.rsplit(".", 1)[-1] in NO_DECAY_NAMES


def param_groups(named_params: Iterable[Tuple[str, nn.Parameter]], weight_decay: float, rate: float = 1.0,
                 layer_of: Optional[Callable[[str], int]] = None, num_layers: int = 0,
                 skip: Collection[str] = ()) -> List[dict]:
    """Optimizer groups of the trainable parameters, one per (layer, decay or not), in
    layer order. Each carries ``lr_scale = rate ** (num_layers + 1 - layer)`` and
    ``wd_scale`` (0 or 1) beside ``weight_decay``, ``layer_id`` and ``param_names``.
    The one rule for the classification engine and the mmengine constructor."""
    check_rate(rate)
    groups = {}
    for name, p in named_params:
        if not p.requires_grad:
            continue
        no_decay = no_weight_decay(name, p, skip)
        layer = layer_of(name) if layer_of is not None and rate < 1 else num_layers + 1
        key = (layer, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "param_names": [], "weight_decay": 0.0 if no_decay else weight_decay,
                           "wd_scale": 0.0 if no_decay else 1.0, "lr_scale": rate ** (num_layers + 1 - layer),
                           "layer_id": layer}
        groups[key]["params"].append(p)
        groups[key]["param_names"].append(name)
    return [groups[k] for k in sorted(groups)]

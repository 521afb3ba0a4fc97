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

from typing import List

import torch.nn as nn

__all__ = ["block_prefixes", "num_layers", "layer_id", "lr_scale", "NO_DECAY_NAMES"]

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


def lr_scale(model: nn.Module, name: str, rate: float) -> float:
    if not 0 < rate <= 1:
        raise ValueError(f"layer decay rate {rate} must lie in (0, 1]")
    return rate ** (num_layers(model) + 1 - layer_id(model, name))

"""Layer ids of a timm model, for layer-wise learning-rate decay (BEiT, ConvNeXt
and Swin fine-tuning recipes). One definition for the whole suite: the
classification fine-tuner and the OpenMMLab optimizer constructor both use it.

Layer 0 is the stem and the embeddings, layer ``i + 1`` the ``i``-th block in
depth order (a stage's downsampling layer counts with the stage's first block),
and layer ``num_layers(model) + 1`` everything after the blocks (final norm,
classifier head, or a detector's neck and heads). A parameter of layer ``i``
gets ``lr * rate ** (num_layers + 1 - i)``.

Detection and segmentation recipes group the layers as ConvNeXt's
``LearningRateDecayOptimizerConstructor`` does (facebookresearch/ConvNeXt,
``object_detection/mmcv_custom/layer_decay_optimizer_constructor.py``), chosen
by ``decay_type`` with ``num_layers`` groups (``grouping``):

* ``layer_wise`` on a plain ViT: one layer per block (BEiT, MAE, ViTDet);
* ``layer_wise`` on a 4-stage model (ConvNeXt, Swin): stem 0, stage 0 -> 1,
  stage 1 -> 2, stage 2 in groups of 3 blocks -> 3, 4, ..., the last stage ->
  ``num_layers``; a stage's downsampling layer goes with its first block;
* ``stage_wise`` on a 4-stage model: stem and every downsampling layer 0,
  stage ``s`` -> ``s + 1``;

everything else (final norm, neck, heads) is layer ``num_layers + 1``.
"""
from __future__ import annotations

from typing import Callable, Collection, Iterable, List, Optional, Tuple

import torch.nn as nn

from .errors import UserError

__all__ = ["block_prefixes", "num_layers", "layer_id", "lr_scale", "check_rate", "no_weight_decay", "param_groups",
           "grouping", "DECAY_TYPES", "LayerDecayError", "NO_DECAY_NAMES"]

DECAY_TYPES = ("layer_wise", "stage_wise")


class LayerDecayError(UserError, ValueError):
    """A layer-decay setting (rate, decay_type, num_layers) the model cannot take."""

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
        raise LayerDecayError(f"layer decay rate {rate} must lie in (0, 1]")
    return rate


def lr_scale(model: nn.Module, name: str, rate: float) -> float:
    return check_rate(rate) ** (num_layers(model) + 1 - layer_id(model, name))


def _stage_blocks(model: nn.Module) -> Tuple[str, List[int]]:
    """(attribute, blocks per stage) of a hierarchical model; attribute '' for a plain one."""
    prefixes = block_prefixes(model)
    if prefixes[0].startswith("blocks."):
        return "", [len(prefixes)]
    attr = prefixes[0].split(".", 1)[0]
    return attr, [len(stage.blocks) for stage in getattr(model, attr)]


def _stage_of(name: str, attr: str) -> Optional[Tuple[int, Optional[int]]]:
    """(stage, block) of a parameter of a stage; block None for the stage's downsampling layer."""
    parts = name.split(".")
    if len(parts) < 3 or parts[0] != attr or not parts[1].isdigit():
        return None
    if parts[2] == "blocks" and len(parts) > 3 and parts[3].isdigit():
        return int(parts[1]), int(parts[3])
    return int(parts[1]), None


def grouping(model: nn.Module, decay_type: str = "layer_wise",
             num_layers: Optional[int] = None) -> Tuple[Callable[[str], int], int]:
    """``(layer_of, L)`` for ``decay_type`` (module docstring): the layer of a parameter
    named relative to ``model``, and the number of layers below the heads (layer ``L + 1``).
    ``num_layers`` None: as many as the rule gives; fewer is an error, more leaves gaps
    (as ConvNeXt's constructor does with stage_wise)."""
    if decay_type not in DECAY_TYPES:
        raise LayerDecayError(f"decay_type {decay_type!r} is not one of {', '.join(DECAY_TYPES)}")
    attr, depths = _stage_blocks(model)
    if not attr:  # plain ViT / Mixer: one layer per block
        if decay_type == "stage_wise":
            raise LayerDecayError(f"decay_type 'stage_wise' needs a model with stages; "
                                  f"{type(model).__name__} has a single stack of blocks (use layer_wise)")
        needed = depths[0]

        def rule(name: str) -> Optional[int]:
            found = layer_id(model, name)
            return found if found <= needed else None
    else:
        if len(depths) != 4:
            raise LayerDecayError(f"decay_type {decay_type!r} groups the 4 stages of ConvNeXt/Swin; "
                                  f"{type(model).__name__} has {len(depths)}")
        if decay_type == "stage_wise":
            needed = 4

            def rule(name: str) -> Optional[int]:
                where = _stage_of(name, attr)
                return None if where is None else (0 if where[1] is None else where[0] + 1)
        else:
            needed = 3 + (depths[2] + 2) // 3  # stages 0, 1; stage 2 in groups of 3; the last stage

            def rule(name: str) -> Optional[int]:
                where = _stage_of(name, attr)
                if where is None:
                    return None
                stage, block = where
                block = 0 if block is None else block  # a downsampling layer: with the stage's first block
                return (1, 2, 3 + block // 3, num_layers)[stage]
    if num_layers is None:
        num_layers = needed
    elif num_layers < needed:
        raise LayerDecayError(f"num_layers={num_layers} is fewer than the {needed} layers decay_type "
                              f"{decay_type!r} gives {type(model).__name__} (depths {depths})")

    def layer_of(name: str) -> int:
        if name.startswith(_STEM):
            return 0
        found = rule(name)
        return num_layers + 1 if found is None else found
    return layer_of, num_layers


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

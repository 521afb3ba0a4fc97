"""The paper's models, by the paper's names, through timm's registry.

After ``import backbones``, ``timm.create_model(name)`` works for every name in
``PAPER_MODELS``. Where timm has the architecture, the paper's name is an alias
of timm's; ``swin_femto`` (not in timm) is registered here with the paper's
sizes. ``create_model_with_drop`` builds any timm model so that every dropout
and stochastic-depth site exists, whatever rate a schedule starts from, and
gives MLP-Mixer the paper's spread of stochastic depth over blocks.
"""
from __future__ import annotations

import timm
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath
from timm.models import generate_default_cfgs, register_model
from timm.models.mlp_mixer import MixerBlock, MlpMixer
from timm.models.swin_transformer import SwinTransformer, _create_swin_transformer

from .drop_sites import DropSites
from .errors import UserError

__all__ = ["PAPER_MODELS", "UnknownModelError", "create_model_with_drop", "same_architecture"]


class UnknownModelError(UserError, ValueError):
    """A model name neither the paper nor timm knows."""

# The paper's name -> the timm architecture it denotes.
PAPER_MODELS = {
    "vit_tiny": "vit_tiny_patch16_224",
    "vit_small": "vit_small_patch16_224",
    "vit_base": "vit_base_patch16_224",
    "mixer_s32": "mixer_s32_224",
    "mixer_b16": "mixer_b16_224",
    "convnext_femto": "convnext_femto",  # timm's own name already
    "swin_femto": "swin_femto",  # registered below
}


def same_architecture(a: str, b: str) -> bool:
    """Whether two model names denote one architecture (a paper name and its timm name do)."""
    return PAPER_MODELS.get(a, a) == PAPER_MODELS.get(b, b)


# register_model looks up the registering module's `default_cfgs`.
default_cfgs = generate_default_cfgs({
    "swin_femto": dict(
        num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.9,
        interpolation="bicubic", fixed_input_size=True, mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD, first_conv="patch_embed.proj", classifier="head.fc",
        license="mit"),
})


@register_model
def swin_femto(pretrained: bool = False, **kwargs) -> SwinTransformer:
    """Swin-F from the paper: patch 4, window 7, embed dim 40, depths 2-2-6-2, heads 2-4-8-16."""
    args = dict(patch_size=4, window_size=7, embed_dim=40, depths=(2, 2, 6, 2), num_heads=(2, 4, 8, 16))
    return _create_swin_transformer("swin_femto", pretrained=pretrained, **dict(args, **kwargs))


def _register_alias(name: str, target: str) -> None:
    def entrypoint(pretrained: bool = False, **kwargs) -> nn.Module:
        return timm.create_model(target, pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"The paper's {name}: timm's {target}."
    register_model(entrypoint)


for _name, _target in PAPER_MODELS.items():
    if _name != _target:
        _register_alias(_name, _target)


def create_model_with_drop(name: str, *, dropout: float = 0.0, drop_path: float = 0.0,
                           **kwargs) -> nn.Module:
    """``timm.create_model`` for a model whose drop rates a schedule will drive.

    ``dropout`` and ``drop_path`` are the *peak* rates of the schedule. The model
    is built with them so that timm creates every site (it omits DropPath at
    rate 0) and spreads stochastic depth over depth its usual way (MLP-Mixer:
    the paper's way, linearly from 0, not timm's uniform rate); a schedule
    then sets the rate of iteration 0 (zero for late dropout) through
    ``DropSites``. timm keeps an ``nn.Dropout`` at every dropout site even at
    rate 0, so dropout needs nothing at construction. Fails clearly when a rate
    has no site to go to (dropout on ConvNeXt).
    """
    if not timm.is_model(name):
        raise UnknownModelError(f"unknown model {name!r}; the paper's models are {sorted(PAPER_MODELS)} "
                         "(any timm model name also works)")
    # No drop_rate: timm uses it for the classifier head's dropout, which no schedule drives.
    model = timm.create_model(name, drop_path_rate=drop_path, **kwargs)
    _spread_mixer_drop_path(model, drop_path)
    DropSites(model, name).check(dropout, drop_path)
    return model


def _spread_mixer_drop_path(model: nn.Module, drop_path: float) -> None:
    """The paper's MLP-Mixer spreads stochastic depth linearly over its blocks,
    ``linspace(0, p, depth)`` as ViT does; timm's gives every block ``p`` (about
    twice the regularisation). Set the paper's spread at construction: ``DropSites``
    keeps each block's share of the deepest rate, so every later rate follows it."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(model, MlpMixer) or not blocks or not all(isinstance(b, MixerBlock) for b in blocks):
        return
    depth = len(blocks)
    for i, block in enumerate(blocks):
        if isinstance(block.drop_path, DropPath):
            block.drop_path.drop_prob = drop_path * i / (depth - 1) if depth > 1 else drop_path

"""Any model of the drop core as an mmdet / mmseg backbone.

``TimmDropBackbone(arch='vit_tiny' | 'swin_femto' | 'convnext_femto' | <timm name>)``
wraps the same timm model that pretraining trains, so a checkpoint from
``tools/pretrain.sh`` (or the paper's release) loads key for key:

* hierarchical models (Swin, ConvNeXt, ...) give their stage outputs through
  timm's ``forward_intermediates`` (strides 4, 8, 16, 32);
* a plain ViT gives its last block's map (stride = patch size), turned into
  strides 4, 8, 16, 32 by a simple feature pyramid as in ViTDet (Li et al.,
  2022): 2x deconvolutions up, max-pooling down; for patch 16 the channels are
  ``[d/4, d/2, d, d]``. Position embeddings are interpolated to each input
  size on the fly (timm's ``dynamic_img_size``).

Any input size works: the input is padded (zeros, i.e. the normalised mean,
bottom and right, as mmdet/mmseg pad) to a multiple of what the architecture
needs (``size_divisor``: a multiple of the patch size and of the coarsest
stride, 32), and each output is cropped back to ``ceil(size /
stride)``, so ADE20K's 512x683 validation images and 'whole' or 'slide'
inference need no size_divisor in the data preprocessor.

Dropout and stochastic depth are built in at their *peak* rates (so every site
exists); ``DropScheduleHook`` then drives them per iteration. Without the hook
they stay at those rates (standard dropout). ``frozen_stages`` and
``norm_eval`` behave as in mmdet's backbones. Pretrained weights come through
``init_cfg=dict(type='Pretrained', checkpoint=...)`` and the suite's own loader
(``backbones.checkpoint.load_pretrained``): layouts are converted, position
tables resized, the classifier dropped, and missing backbone keys are an error
that lists them.

The weights were trained on inputs normalised one way (recorded in the
checkpoint's meta; the paper's release: ImageNet mean/std); the detector's or
segmentor's ``data_preprocessor`` must normalise the same way.
``check_data_preprocessor(model)`` (called by ``DropTransferRunner`` once the
weights are loaded) refuses a config whose ``data_preprocessor.mean/std`` differ.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from timm.layers import LayerNorm2d
from timm.models.mlp_mixer import MlpMixer
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer
from torch.nn.modules.batchnorm import _BatchNorm

from .. import layer_decay
from ..checkpoint import CheckpointError, load_pretrained, normalization_from_meta
from ..drop_sites import DropSites
from ..models import create_model_with_drop

__all__ = ["TimmDropBackbone", "SimpleFeaturePyramid", "InputNormalizationError", "check_data_preprocessor"]


class InputNormalizationError(CheckpointError):
    """The config normalises inputs otherwise than the backbone's weights were trained."""


class SimpleFeaturePyramid(nn.Module):
    """A plain ViT's single map (stride = patch size) -> strides 4, 8, 16, 32:
    2x deconvolutions up, max-pooling down, identity at the patch stride.
    Channels: d/4 after two deconvolutions, d/2 after one, d otherwise."""

    def __init__(self, dim: int, patch_size: int = 16, strides: Sequence[int] = (4, 8, 16, 32)):
        super().__init__()
        self.levels = nn.ModuleList()
        self.channels = []
        for stride in strides:
            ratio = patch_size / stride
            if ratio == 4:
                half, quarter = dim // 2, dim // 4
                level = nn.Sequential(nn.ConvTranspose2d(dim, half, 2, 2), LayerNorm2d(half), nn.GELU(),
                                      nn.ConvTranspose2d(half, quarter, 2, 2))
                out = quarter
            elif ratio == 2:
                level, out = nn.ConvTranspose2d(dim, dim // 2, 2, 2), dim // 2
            elif ratio == 1:
                level, out = nn.Identity(), dim
            elif ratio in (0.5, 0.25):
                k = int(1 / ratio)
                level, out = nn.MaxPool2d(k, k), dim
            else:
                raise ValueError(f"no simple pyramid level from stride {patch_size} to stride {stride}")
            self.levels.append(level)
            self.channels.append(out)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [level(x) for level in self.levels]


@MODELS.register_module()
class TimmDropBackbone(BaseModule):
    def __init__(self, arch: str, out_indices: Optional[Sequence[int]] = None, dropout: float = 0.0,
                 drop_path: float = 0.0, frozen_stages: int = -1, norm_eval: bool = False,
                 model_kwargs: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.arch, self.dropout, self.drop_path = arch, dropout, drop_path
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        kwargs = dict(model_kwargs or {})
        kwargs.setdefault("num_classes", 0)
        self.model = self._build(arch, dropout, drop_path, kwargs)
        self.drop_sites = DropSites(self.model, arch)
        self.plain = isinstance(self.model, VisionTransformer)
        if self.plain:
            depth = len(self.model.blocks)
            self.out_indices = list(out_indices) if out_indices is not None else [depth - 1]
            if len(self.out_indices) != 1:
                raise ValueError(f"{arch}: a plain ViT backbone feeds the feature pyramid from one block; "
                                 f"got out_indices={self.out_indices}")
            patch = self.model.patch_embed.patch_size[0]
            self.pyramid = SimpleFeaturePyramid(self.model.embed_dim, patch)
            self.channels = self.pyramid.channels
            self.strides = [4, 8, 16, 32]
            self.size_divisor = math.lcm(patch, 32)  # whole tokens, and the pyramid's pooling comes out even
        else:
            n = len(self.model.feature_info)
            self.out_indices = list(out_indices) if out_indices is not None else list(range(n))
            self.channels = [self.model.feature_info[i]["num_chs"] for i in self.out_indices]
            self.strides = [self.model.feature_info[i]["reduction"] for i in self.out_indices]
            self.size_divisor = self.model.feature_info[-1]["reduction"]
            # A LayerNorm per output, as the Swin and ConvNeXt detection backbones add.
            self.out_norms = nn.ModuleList(LayerNorm2d(c) for c in self.channels)
        self.pretrained_provenance: Optional[dict] = None
        self.pretrained_normalization: Optional[dict] = None  # {mean, std, interpolation} of the loaded weights
        self._freeze_stages()

    @staticmethod
    def _build(arch: str, dropout: float, drop_path: float, kwargs: dict) -> nn.Module:
        # Downstream inputs vary in size: ask timm for size-agnostic variants.
        for extra in ({"dynamic_img_size": True}, {"strict_img_size": False}, {}):
            try:
                model = create_model_with_drop(arch, dropout=dropout, drop_path=drop_path, **{**extra, **kwargs})
            except TypeError as exc:
                if any(k in str(exc) for k in extra):
                    continue
                raise
            break
        if isinstance(model, MlpMixer):
            raise ValueError(f"{arch}: MLP-Mixer mixes a fixed number of tokens and cannot take detection "
                             "or segmentation inputs of varying size; use a ViT, Swin or ConvNeXt backbone")
        return model

    # ---- weights ----------------------------------------------------------------------
    def init_weights(self) -> None:
        cfg = self.init_cfg or {}
        if isinstance(cfg, dict) and cfg.get("type") == "Pretrained":
            if not cfg.get("checkpoint"):
                raise CheckpointError(f"TimmDropBackbone({self.arch}): init_cfg asks for pretrained weights but "
                                      "names no checkpoint (tools/train.py --pretrained PATH, or set "
                                      "model.backbone.init_cfg.checkpoint)")
            report = load_pretrained(self.model, cfg["checkpoint"], expected_arch=self.arch)
            self.pretrained_provenance = report.provenance  # the file read and hashed once
            self.pretrained_normalization = normalization_from_meta(report.meta)
            self._is_init = True
            return
        super().init_weights()

    # ---- layer ids for layer-wise learning-rate decay (backbones/layer_decay.py) ---------
    @property
    def num_layers(self) -> int:
        return layer_decay.num_layers(self.model)

    def layer_id(self, name: str) -> int:
        """Layer of a parameter named relative to the backbone; the pyramid and
        output norms come after the blocks."""
        if not name.startswith("model."):
            return self.num_layers + 1
        return layer_decay.layer_id(self.model, name[len("model."):])

    def layer_grouping(self, decay_type: str = "layer_wise", num_layers: Optional[int] = None):
        """``(layer_of, L)`` of ``layer_decay.grouping`` for parameters named relative to
        the backbone; the pyramid and output norms come after the blocks (``L + 1``)."""
        layer_of, total = layer_decay.grouping(self.model, decay_type, num_layers)

        def of(name: str) -> int:
            return layer_of(name[len("model."):]) if name.startswith("model.") else total + 1
        return of, total

    # ---- stages, freezing --------------------------------------------------------------
    def _stages(self) -> List[List[nn.Module]]:
        """Stage 0 is the stem (and, for ViT, the embeddings); stage i >= 1 the i-th block group."""
        m = self.model
        if self.plain:
            return [[m.patch_embed]] + [[b] for b in m.blocks]
        if isinstance(m, SwinTransformer):
            return [[m.patch_embed]] + [[layer] for layer in m.layers]
        return [[m.stem]] + [[s] for s in m.stages]

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        stages = self._stages()
        if self.frozen_stages >= len(stages):
            raise ValueError(f"frozen_stages={self.frozen_stages}, but {self.arch} has stages 0..{len(stages) - 1}")
        for stage in stages[:self.frozen_stages + 1]:
            for module in stage:
                module.eval()
                for p in module.parameters():
                    p.requires_grad = False
        if self.plain:  # the embeddings belong to stage 0
            for name in ("cls_token", "pos_embed", "reg_token"):
                p = getattr(self.model, name, None)
                if isinstance(p, nn.Parameter):
                    p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # ---- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple:
        h, w = x.shape[-2:]
        d = self.size_divisor
        pad_h, pad_w = -h % d, -w % d
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        feats = self.model.forward_intermediates(x, indices=self.out_indices, intermediates_only=True,
                                                 output_fmt="NCHW")
        outs = self.pyramid(feats[-1]) if self.plain else [norm(f) for norm, f in zip(self.out_norms, feats)]
        if pad_h or pad_w:  # back to the input's extent at each stride
            outs = [o[..., :-(-h // s), :-(-w // s)] for o, s in zip(outs, self.strides)]
        return tuple(outs)


def _values(x) -> List[float]:
    return [float(v) for v in torch.as_tensor(x).reshape(-1)]


def check_data_preprocessor(model: nn.Module) -> None:
    """Refuse a model whose ``data_preprocessor`` normalises inputs otherwise than its
    pretrained ``TimmDropBackbone`` weights were trained (mmdet/mmseg preprocessors
    hold mean/std in 0-255 units, the checkpoint's meta in 0-1)."""
    pre = getattr(model, "data_preprocessor", None)
    if pre is None or not hasattr(pre, "_enable_normalize"):  # not an image preprocessor (toy models)
        return
    for backbone in model.modules():
        norm = getattr(backbone, "pretrained_normalization", None)
        if not isinstance(backbone, TimmDropBackbone) or norm is None:
            continue
        want_mean = [255 * v for v in norm["mean"]]
        want_std = [255 * v for v in norm["std"]]
        ckpt = (backbone.init_cfg or {}).get("checkpoint")
        fix = (f"set data_preprocessor.mean={[round(v, 3) for v in want_mean]}, "
               f"std={[round(v, 3) for v in want_std]}")
        if not pre._enable_normalize:
            raise InputNormalizationError(
                f"model.data_preprocessor does not normalise inputs, but checkpoint {ckpt} was pretrained on "
                f"inputs normalised with mean {norm['mean']}, std {norm['std']} (0-1 units): {fix}")
        have_mean, have_std = _values(pre.mean), _values(pre.std)
        close = all(abs(a - b) < 1e-2 for a, b in zip(have_mean + have_std, want_mean + want_std))
        if len(have_mean) != 3 or len(have_std) != 3 or not close:
            raise InputNormalizationError(
                f"model.data_preprocessor.mean/std {[round(v, 3) for v in have_mean]}/"
                f"{[round(v, 3) for v in have_std]} (0-255 units) do not match the normalisation checkpoint "
                f"{ckpt} was pretrained with: {fix}")

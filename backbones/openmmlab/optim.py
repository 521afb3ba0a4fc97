"""Layer-wise learning-rate decay (BEiT, ConvNeXt and Swin detection/segmentation
recipes) for TimmDropBackbone, as an mmengine optimizer-wrapper constructor.

    optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.9))

A parameter of layer ``i`` (0 = stem/embeddings, ``L`` = number of blocks,
``L + 1`` = everything after the backbone's blocks: pyramid, neck, heads) gets
``lr * layer_decay_rate ** (L + 1 - i)``. Biases, norms, 1-D parameters and
tokens get no weight decay.
"""
from __future__ import annotations

from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ..layer_decay import param_groups

__all__ = ["LayerDecayOptimWrapperConstructor"]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    def add_params(self, params, module, prefix: str = "", **kwargs) -> None:
        model = module.module if is_model_wrapper(module) else module
        backbone = getattr(model, "backbone", None)
        if backbone is None or not hasattr(backbone, "layer_id"):
            raise TypeError("LayerDecayOptimWrapperConstructor needs model.backbone to be a TimmDropBackbone")
        rate = float(self.paramwise_cfg.get("layer_decay_rate", 1.0))
        top = backbone.num_layers + 1  # neck and heads come after the backbone's last block

        def layer_of(name: str) -> int:
            return backbone.layer_id(name[len("backbone."):]) if name.startswith("backbone.") else top

        try:
            groups = param_groups(model.named_parameters(), self.base_wd, rate, layer_of=layer_of,
                                  num_layers=backbone.num_layers)
        except ValueError as exc:
            raise ValueError(f"paramwise_cfg.layer_decay_rate: {exc}") from None
        for group in groups:
            group["lr"] = self.base_lr * group.pop("lr_scale")
            del group["wd_scale"]  # mmengine sets the decay per group once; nothing rescales it
        params.extend(groups)

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

from ..layer_decay import NO_DECAY_NAMES

__all__ = ["LayerDecayOptimWrapperConstructor"]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    def add_params(self, params, module, prefix: str = "", **kwargs) -> None:
        model = module.module if is_model_wrapper(module) else module
        backbone = getattr(model, "backbone", None)
        if backbone is None or not hasattr(backbone, "layer_id"):
            raise TypeError("LayerDecayOptimWrapperConstructor needs model.backbone to be a TimmDropBackbone")
        rate = float(self.paramwise_cfg.get("layer_decay_rate", 1.0))
        if not 0 < rate <= 1:
            raise ValueError(f"paramwise_cfg.layer_decay_rate={rate} must lie in (0, 1]")
        top = backbone.num_layers + 1
        groups = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            layer = backbone.layer_id(name[len("backbone."):]) if name.startswith("backbone.") else top
            no_decay = param.ndim == 1 or name.endswith(".bias") or name.split(".")[-1] in NO_DECAY_NAMES
            key = (layer, no_decay)
            if key not in groups:
                groups[key] = {"params": [], "lr": self.base_lr * rate ** (top - layer),
                               "weight_decay": 0.0 if no_decay else self.base_wd, "layer_id": layer,
                               "param_names": []}
            groups[key]["params"].append(param)
            groups[key]["param_names"].append(name)
        params.extend(groups[k] for k in sorted(groups))

"""Layer-wise learning-rate decay for TimmDropBackbone, as an mmengine
optimizer-wrapper constructor, with the keys of ConvNeXt's
``LearningRateDecayOptimizerConstructor`` (facebookresearch/ConvNeXt,
``object_detection/mmcv_custom/layer_decay_optimizer_constructor.py``; mmdet and
mmseg ship a port of it):

    optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.95, decay_type='layer_wise', num_layers=6))

``decay_type`` (``layer_wise``, the default, or ``stage_wise``) and ``num_layers``
group the backbone's parameters into layers ``0 .. L`` as
``backbones.layer_decay.grouping`` describes (``num_layers`` left out: as many
as the rule gives); everything after the backbone's blocks (pyramid, neck,
heads) is layer ``L + 1``. A parameter of layer ``i`` gets ``lr *
layer_decay_rate ** (L + 1 - i)`` (rate 1, the default: no decay). Biases,
norms, 1-D parameters and tokens get no weight decay. A bad key is a
``LayerDecayError`` naming it (one line through the launchers).
"""
from __future__ import annotations

from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ..layer_decay import LayerDecayError, param_groups

__all__ = ["LayerDecayOptimWrapperConstructor"]

KEYS = ("layer_decay_rate", "decay_type", "num_layers")


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    def add_params(self, params, module, prefix: str = "", **kwargs) -> None:
        model = module.module if is_model_wrapper(module) else module
        backbone = getattr(model, "backbone", None)
        if backbone is None or not hasattr(backbone, "layer_grouping"):
            raise TypeError("LayerDecayOptimWrapperConstructor needs model.backbone to be a TimmDropBackbone")
        unknown = sorted(set(self.paramwise_cfg) - set(KEYS))
        if unknown:
            raise LayerDecayError(f"optim_wrapper.paramwise_cfg.{unknown[0]}: not a key of "
                                  f"LayerDecayOptimWrapperConstructor (it takes {', '.join(KEYS)})")
        cfg = self.paramwise_cfg
        rate = float(cfg.get("layer_decay_rate", 1.0))
        try:
            backbone_layer, total = backbone.layer_grouping(cfg.get("decay_type", "layer_wise"),
                                                            cfg.get("num_layers"))
        except LayerDecayError as exc:
            key = "num_layers" if str(exc).startswith("num_layers") else "decay_type"
            raise LayerDecayError(f"optim_wrapper.paramwise_cfg.{key}: {exc}") from None

        def layer_of(name: str) -> int:  # neck and heads come after the backbone's last layer
            return backbone_layer(name[len("backbone."):]) if name.startswith("backbone.") else total + 1

        try:
            groups = param_groups(model.named_parameters(), self.base_wd, rate, layer_of=layer_of,
                                  num_layers=total)
        except LayerDecayError as exc:
            raise LayerDecayError(f"optim_wrapper.paramwise_cfg.layer_decay_rate: {exc}") from None
        for group in groups:
            group["lr"] = self.base_lr * group.pop("lr_scale")
            del group["wd_scale"]  # mmengine sets the decay per group once; nothing rescales it
        params.extend(groups)

# Mask R-CNN, ConvNeXt-F, COCO 1x: the backbone settings of
# mask-rcnn_convnext-femto_fpn_ms-3x_coco.py (ConvNeXt's 3x recipe: layer_wise decay 0.95) on
# ../_base_/coco_1x.py (mmdet 3.x Swin-T 1x). ConvNeXt published no 1x Mask R-CNN recipe.
_base_ = ['../_base_/models/mask-rcnn_convnext-femto-fpn.py', '../_base_/coco_1x.py']
model = dict(backbone=dict(drop_path=0.1))  # assumption (ConvNeXt-T: 0.4)
# num_layers 5: ConvNeXt's layer_wise rule on depths 2-2-6-2 (ConvNeXt-T's 3-3-9-3: 6)
optim_wrapper = dict(paramwise_cfg=dict(decay_type='layer_wise', layer_decay_rate=0.95, num_layers=5))

# Mask R-CNN, ViT-T + simple feature pyramid, COCO multi-scale crop 3x: the backbone settings
# of mask-rcnn_vit-tiny_fpn_1x_coco.py (ViTDet ViT-B) on ../_base_/coco_ms-3x.py
# (mmdet 3.x Swin-T / ConvNeXt-T 3x).
_base_ = ['../_base_/models/mask-rcnn_vit-tiny-fpn.py', '../_base_/coco_ms-3x.py']
model = dict(backbone=dict(drop_path=0.1))  # ViTDet ViT-B: 0.1
optim_wrapper = dict(paramwise_cfg=dict(decay_type='layer_wise', layer_decay_rate=0.7, num_layers=12))

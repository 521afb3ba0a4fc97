# ViT-T (patch 16) with a ViTDet-style simple feature pyramid: channels d/4, d/2, d, d.
_base_ = './mask-rcnn_timm-fpn.py'
model = dict(backbone=dict(arch='vit_tiny'), neck=dict(in_channels=[48, 96, 192, 192]))

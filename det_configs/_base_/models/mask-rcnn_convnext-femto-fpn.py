_base_ = './mask-rcnn_timm-fpn.py'
model = dict(backbone=dict(arch='convnext_femto'), neck=dict(in_channels=[48, 96, 192, 384]))

_base_ = './mask-rcnn_timm-fpn.py'
model = dict(backbone=dict(arch='convnext_femto', drop_path=0.1), neck=dict(in_channels=[48, 96, 192, 384]))

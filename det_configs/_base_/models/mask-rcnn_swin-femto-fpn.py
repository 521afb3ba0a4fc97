_base_ = './mask-rcnn_timm-fpn.py'
model = dict(backbone=dict(arch='swin_femto'), neck=dict(in_channels=[40, 80, 160, 320]))

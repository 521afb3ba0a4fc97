_base_ = ['../_base_/models/mask-rcnn_vit-tiny-fpn.py', '../_base_/coco_1x.py']
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint='output/pretrain/vit_tiny_no_dropout/weights.pth')))

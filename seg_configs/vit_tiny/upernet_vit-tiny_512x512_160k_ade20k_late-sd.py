_base_ = ['../_base_/models/upernet_vit-tiny.py', '../_base_/ade20k_512x512_160k.py']
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint='output/pretrain/vit_tiny_late_sd/weights.pth')))

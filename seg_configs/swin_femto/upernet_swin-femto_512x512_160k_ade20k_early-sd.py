_base_ = ['../_base_/models/upernet_swin-femto.py', '../_base_/ade20k_512x512_160k.py']
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint='output/pretrain/swin_femto_early_sd/weights.pth')))

_base_ = './upernet_timm.py'
model = dict(backbone=dict(arch='convnext_femto'),
             decode_head=dict(in_channels=[48, 96, 192, 384]), auxiliary_head=dict(in_channels=192))

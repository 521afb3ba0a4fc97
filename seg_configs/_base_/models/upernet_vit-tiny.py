_base_ = './upernet_timm.py'
model = dict(backbone=dict(arch='vit_tiny'),
             decode_head=dict(in_channels=[48, 96, 192, 192]), auxiliary_head=dict(in_channels=192))

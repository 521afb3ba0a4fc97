_base_ = './upernet_timm.py'
model = dict(backbone=dict(arch='swin_femto'),
             decode_head=dict(in_channels=[40, 80, 160, 320]), auxiliary_head=dict(in_channels=160))

_base_ = './upernet_timm.py'
model = dict(backbone=dict(arch='swin_femto', drop_path=0.1),
             decode_head=dict(in_channels=[40, 80, 160, 320]), auxiliary_head=dict(in_channels=160))

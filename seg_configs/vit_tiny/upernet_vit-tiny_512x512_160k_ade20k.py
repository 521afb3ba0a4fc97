# UperNet, ViT-T + simple feature pyramid, ADE20K 512x512, 160k. Follows
# open-mmlab/mmsegmentation (1.x) configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py,
# the published plain-ViT UperNet recipe at ViT-T's depth of 12 (MAE ViT-B; there is none
# for ViT-T): AdamW lr 1e-4, weight decay 0.05, one layer per block with decay 0.65, drop path
# 0.1, sliding-window inference (schedule and pipeline: ../_base_/ade20k_512x512_160k.py).
# Deliberate difference: the ViTDet simple pyramid from the last block (as the detection
# configs) instead of MAE's four blocks (3, 5, 7, 11) through Feature2Pyramid; fp32 unless --amp.
# Start from a pretraining checkpoint: tools/train.py CONFIG --pretrained PATH.
_base_ = ['../_base_/models/upernet_vit-tiny.py', '../_base_/ade20k_512x512_160k.py']
model = dict(
    backbone=dict(drop_path=0.1),  # MAE ViT-B: 0.1
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))  # MAE
optim_wrapper = dict(paramwise_cfg=dict(decay_type='layer_wise', layer_decay_rate=0.65, num_layers=12))  # MAE

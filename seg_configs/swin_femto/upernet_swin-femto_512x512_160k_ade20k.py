# UperNet, Swin-F, ADE20K 512x512, 160k. Follows open-mmlab/mmsegmentation (1.x)
# configs/swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py:
# AdamW lr 6e-5, weight decay 0.01 (the rest of the schedule and the pipeline:
# ../_base_/ade20k_512x512_160k.py); no layer-wise lr decay; whole-image inference.
# Deliberate difference: drop path 0.1, not Swin-T's 0.3 (no femto-size reference: the
# suite's assumption).
# Start from a pretraining checkpoint: tools/train.py CONFIG --pretrained PATH.
_base_ = ['../_base_/models/upernet_swin-femto.py', '../_base_/ade20k_512x512_160k.py']
model = dict(backbone=dict(drop_path=0.1))  # assumption (Swin-T: 0.3)
optim_wrapper = dict(optimizer=dict(lr=6e-5, weight_decay=0.01))  # mmseg Swin-T

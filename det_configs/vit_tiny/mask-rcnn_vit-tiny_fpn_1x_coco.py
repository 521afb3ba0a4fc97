# Mask R-CNN, ViT-T + simple feature pyramid, COCO 1x. Schedule, optimizer and pipeline:
# ../_base_/coco_1x.py (mmdet 3.x Swin-T 1x). Backbone settings follow ViTDet's ViT-B,
# the published plain-ViT detection recipe at ViT-T's depth of 12 (facebookresearch/detectron2
# projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py); there is none for ViT-T.
# Deliberate differences from ViTDet: the 1x schedule instead of its 100-epoch large-scale
# jitter at 1024x1024 and weight decay 0.05 instead of 0.1 (one schedule for every backbone);
# global attention in every block, as pretrained (ViTDet: windows in 8 of 12); fp32 unless --amp.
# Start from a pretraining checkpoint: tools/train.py CONFIG --pretrained PATH.
_base_ = ['../_base_/models/mask-rcnn_vit-tiny-fpn.py', '../_base_/coco_1x.py']
model = dict(backbone=dict(drop_path=0.1))  # ViTDet ViT-B: 0.1
# ViTDet: one layer per block, 0.7 (ViT-B, 12 blocks)
optim_wrapper = dict(paramwise_cfg=dict(decay_type='layer_wise', layer_decay_rate=0.7, num_layers=12))

# Mask R-CNN, ConvNeXt-F, COCO multi-scale crop 3x. Follows facebookresearch/ConvNeXt
# object_detection/configs/convnext/mask_rcnn_convnext_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco_in1k.py
# and its mmdet 3.x port configs/convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py
# (schedule, optimizer, pipeline: ../_base_/coco_ms-3x.py).
# Deliberate differences: drop path 0.1, not ConvNeXt-T's 0.4 (no femto-size reference: the
# suite's assumption); num_layers 5, which is ConvNeXt's layer_wise rule on depths 2-2-6-2
# (ConvNeXt-T's 3-3-9-3 gives its 6); fp32 unless tools/train.py --amp.
# Start from a pretraining checkpoint: tools/train.py CONFIG --pretrained PATH.
_base_ = ['../_base_/models/mask-rcnn_convnext-femto-fpn.py', '../_base_/coco_ms-3x.py']
model = dict(backbone=dict(drop_path=0.1))  # assumption (ConvNeXt-T: 0.4)
# ConvNeXt: layer_wise, 0.95 (stage 2 in groups of 3 blocks)
optim_wrapper = dict(paramwise_cfg=dict(decay_type='layer_wise', layer_decay_rate=0.95, num_layers=5))

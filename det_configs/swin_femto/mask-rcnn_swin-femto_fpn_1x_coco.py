# Mask R-CNN, Swin-F, COCO 1x. Follows open-mmlab/mmdetection (3.x)
# configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py (schedule, optimizer, pipeline:
# ../_base_/coco_1x.py); like it, no layer-wise lr decay.
# Deliberate difference: drop path 0.1, not Swin-T's 0.2 -- no reference exists at femto size
# (~4x fewer parameters; the paper's premise is that such models underfit), so this is the
# suite's assumption.
# Start from a pretraining checkpoint: tools/train.py CONFIG --pretrained PATH.
_base_ = ['../_base_/models/mask-rcnn_swin-femto-fpn.py', '../_base_/coco_1x.py']
model = dict(backbone=dict(drop_path=0.1))  # assumption (Swin-T: 0.2)

# Mask R-CNN, Swin-F, COCO multi-scale crop 3x. Follows open-mmlab/mmdetection (3.x)
# configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py (schedule, optimizer, pipeline:
# ../_base_/coco_ms-3x.py); like it, no layer-wise lr decay.
# Deliberate difference: drop path 0.1, not Swin-T's 0.2 (no femto-size reference: the suite's
# assumption, as in the 1x config).
_base_ = ['../_base_/models/mask-rcnn_swin-femto-fpn.py', '../_base_/coco_ms-3x.py']
model = dict(backbone=dict(drop_path=0.1))  # assumption (Swin-T: 0.2)

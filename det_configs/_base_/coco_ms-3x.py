# COCO 2017 instance segmentation, multi-scale crop 3x. Follows open-mmlab/mmdetection (3.x)
# configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py and
# configs/convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py, the ports of the
# Swin and ConvNeXt 3x recipes (facebookresearch/ConvNeXt object_detection/configs/convnext/
# mask_rcnn_convnext_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco_in1k.py): AdamW lr 1e-4,
# betas (0.9, 0.999), weight decay 0.05; 36 epochs, steps at 27 and 33; linear warmup from
# 0.001 over 1000 iterations (ConvNeXt's repository: 500, mmdet 2.x's); the DETR-style augmentation; batch 16.
_base_ = './coco_1x.py'

# shorter side 480..800 step 32, longer side at most 1333
multi_scale = [(1333, 480 + 32 * i) for i in range(11)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(1333, 400), (1333, 500), (1333, 600)], keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
    ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1),
]

# CPU demo: Mask R-CNN on the generated COCO-format data (tools/make_demo_data.py),
# starting from the demo's pretrained ViT (4 blocks, width 96, patch 8, see
# pretrain_configs/demo_cpu.yaml). Small images and heads; a few minutes on 2 cores.
_base_ = ['../_base_/models/mask-rcnn_vit-tiny-fpn.py', '../_base_/coco_1x.py']

data_root = 'data/demo/coco/'
# demo_data.category_name of demo_data.PRETRAIN_CATEGORIES (a test keeps them equal)
classes = ('solid circle', 'stripes circle', 'checker circle', 'solid square', 'stripes square',
           'checker square', 'solid triangle', 'stripes triangle', 'checker triangle', 'solid diamond',
           'stripes diamond', 'checker diamond')
metainfo = dict(classes=classes)
scale = (128, 128)
width = 64  # FPN and head channels

model = dict(
    backbone=dict(
        model_kwargs=dict(depth=4, patch_size=8, embed_dim=96, num_heads=3, img_size=64),
        init_cfg=dict(checkpoint='output/demo/pretrain/early_dropout/weights.pth')),
    # patch 8: strides 4, 8, 16, 32 come from one deconvolution, identity and two poolings
    neck=dict(in_channels=[48, 96, 96, 96], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=256, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=len(classes))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=128))),
    # score_thr 0 (mmdet: 0.05): a head trained for minutes may score nothing above 0.05, and
    # then CocoMetric reports no AP at all; detections below every kept score cannot lower AP.
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(score_thr=0.0, max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=8)))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator

max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[3], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(layer_decay_rate=0.95))  # per block
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_epochs))

# COCO 2017 instance segmentation, 1x. Follows open-mmlab/mmdetection (3.x)
# configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py: AdamW lr 1e-4, betas (0.9, 0.999),
# weight decay 0.05; 12 epochs, steps at 8 and 11; linear warmup from 0.001 over 1000
# iterations; single scale 1333x800 (mmdet's coco_instance pipeline); batch 16 = 8 GPUs x 2.
# Layer-wise lr decay and drop path: the configs of each backbone (det_configs/<arch>/).
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # no weight decay on norms, biases and tokens (the reference: norms and position tables only);
    # the backbone configs set paramwise_cfg (layer_decay_rate, decay_type, num_layers)
    constructor='LayerDecayOptimWrapperConstructor')

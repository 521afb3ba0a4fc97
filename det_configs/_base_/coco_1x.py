# COCO 2017 instance segmentation, 1x schedule (12 epochs, steps at 8 and 11),
# single-scale 1333x800, batch 16 = 8 GPUs x 2. AdamW as in the ConvNeXt and
# Swin detection recipes.
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # layer-wise lr decay; no weight decay on norms, biases and tokens
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95))

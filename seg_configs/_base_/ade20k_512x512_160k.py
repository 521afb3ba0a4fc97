# ADE20K, 512x512 crops, 160k iterations. Follows open-mmlab/mmsegmentation (1.x)
# configs/convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py (the port of
# facebookresearch/ConvNeXt semantic_segmentation/configs/convnext/upernet_convnext_tiny_512_160k_ade20k_ss.py):
# AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05; linear warmup from 1e-6 over 1500
# iterations, then poly (power 1, to 0); batch 16 = 8 GPUs x 2; mmseg's ADE20K pipeline
# (resize to 2048x512, ratio 0.5-2.0, crop 512, cat_max_ratio 0.75, flip, photometric
# distortion). Inference mode (ConvNeXt's: sliding window, crop 512, stride 341), layer-wise
# lr decay and drop path: the configs of each backbone (seg_configs/<arch>/).
_base_ = [
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # no weight decay on norms, biases and tokens; the backbone configs set paramwise_cfg
    constructor='LayerDecayOptimWrapperConstructor')
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]

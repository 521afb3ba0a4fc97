# CPU demo: UperNet on the generated ADE20K-layout data (tools/make_demo_data.py),
# starting from the demo's pretrained ViT (4 blocks, width 96, patch 8, see
# pretrain_configs/demo_cpu.yaml). Small crops and heads; a few minutes on 2 cores.
_base_ = ['../_base_/models/upernet_vit-tiny.py', '../_base_/ade20k_512x512_160k.py']

data_root = 'data/demo/ade20k'
# demo_data.category_name of demo_data.PRETRAIN_CATEGORIES (a test keeps them equal);
# label 0 of the PNGs is "other" and ignored (reduce_zero_label), as in ADE20K.
classes = ('solid circle', 'stripes circle', 'checker circle', 'solid square', 'stripes square',
           'checker square', 'solid triangle', 'stripes triangle', 'checker triangle', 'solid diamond',
           'stripes diamond', 'checker diamond')
palette = [[(37 * i) % 256, (91 * i) % 256, (151 * i) % 256] for i in range(len(classes))]
crop_size = (96, 96)
norm_cfg = dict(type='BN', requires_grad=True)  # one CPU process: no SyncBN

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        model_kwargs=dict(depth=4, patch_size=8, embed_dim=96, num_heads=3, img_size=64),
        init_cfg=dict(checkpoint='output/demo/pretrain/early_dropout/weights.pth')),
    decode_head=dict(in_channels=[48, 96, 96, 96], channels=64, num_classes=len(classes), norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=96, channels=32, num_classes=len(classes), norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=dict(classes=classes, palette=palette),
               img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(dataset, data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline, _delete_=True))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(dataset, data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=test_pipeline, _delete_=True))
test_dataloader = val_dataloader

max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=20, end=max_iters),
]
# fresh heads, few iterations; layer decay per block
optim_wrapper = dict(optimizer=dict(lr=1e-3), paramwise_cfg=dict(layer_decay_rate=0.9))
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters))

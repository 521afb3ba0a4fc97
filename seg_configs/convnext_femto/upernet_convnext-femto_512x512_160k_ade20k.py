# UperNet, ConvNeXt-F, ADE20K 512x512, 160k. Follows open-mmlab/mmsegmentation (1.x)
# configs/convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py and
# facebookresearch/ConvNeXt semantic_segmentation/configs/convnext/upernet_convnext_tiny_512_160k_ade20k_ss.py
# (schedule, optimizer, pipeline: ../_base_/ade20k_512x512_160k.py).
# Deliberate differences: drop path 0.1, not ConvNeXt-T's 0.4 (no femto-size reference: the
# suite's assumption); fp32 unless tools/train.py --amp.
# Start from a pretraining checkpoint: tools/train.py CONFIG --pretrained PATH.
_base_ = ['../_base_/models/upernet_convnext-femto.py', '../_base_/ade20k_512x512_160k.py']
model = dict(
    backbone=dict(drop_path=0.1),  # assumption (ConvNeXt-T: 0.4)
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))  # ConvNeXt
# ConvNeXt: stage_wise, 0.9, num_layers 6 (stages get 0.9^6..0.9^3, stem and downsampling 0.9^7)
optim_wrapper = dict(paramwise_cfg=dict(decay_type='stage_wise', layer_decay_rate=0.9, num_layers=6))

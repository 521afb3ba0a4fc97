# UperNet (+ FCN auxiliary head) with a backbone of this suite (TimmDropBackbone).
# The per-backbone files set arch and the heads' input channels; seg_configs/<arch>/ the
# fine-tuning drop path and layer decay.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['backbones.openmmlab'], allow_failed_imports=False)
runner_type = 'DropTransferRunner'  # weights-only-safe resume + run records
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(512, 512)),  # ADE20K's crop (crop_size of the dataset base)
    backbone=dict(
        _delete_=True,
        type='TimmDropBackbone',
        arch=None,
        dropout=0.0,
        drop_path=0.1,
        frozen_stages=-1,
        norm_eval=False,
        # the pretraining checkpoint: tools/train.py --pretrained PATH (the suite passes it)
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    decode_head=dict(in_channels=None, num_classes=150),
    auxiliary_head=dict(in_channels=None, num_classes=150))

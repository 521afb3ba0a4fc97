# Mask R-CNN + FPN with a backbone of this suite (TimmDropBackbone). The
# per-backbone files set arch and the FPN input channels; det_configs/<arch>/ the
# fine-tuning drop path and layer decay.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['backbones.openmmlab'], allow_failed_imports=False)
runner_type = 'DropTransferRunner'  # weights-only-safe resume + run records
model = dict(
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
    neck=dict(in_channels=None))

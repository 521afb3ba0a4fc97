"""The suite's OpenMMLab adapter: backbone, hooks, optimizer constructor and runner,
registered in mmengine's root registries so that mmdet and mmseg (whose
registries are its children) find them through
``custom_imports=dict(imports=['backbones.openmmlab'])``."""
from .hooks import DropScheduleHook, RunRecordHook
from .optim import LayerDecayOptimWrapperConstructor
from .runner import DropTransferRunner, checkpoint_globals
from .timm_backbone import SimpleFeaturePyramid, TimmDropBackbone

__all__ = ["DropScheduleHook", "DropTransferRunner", "LayerDecayOptimWrapperConstructor", "RunRecordHook",
           "SimpleFeaturePyramid", "TimmDropBackbone", "checkpoint_globals"]

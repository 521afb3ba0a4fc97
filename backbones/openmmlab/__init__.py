"""OpenMMLab parts of the suite, registered in mmengine's root registries so that
mmdet and mmseg (whose registries are its children) find them through
``custom_imports=dict(imports=['backbones'])``."""
from .runner import DropTransferRunner, checkpoint_globals

__all__ = ["DropTransferRunner", "checkpoint_globals"]

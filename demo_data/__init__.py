"""Generated demo data in the real on-disk formats (ImageNet folders first;
COCO, ADE20K and classification-transfer layouts reuse the same scenes)."""
from .imagenet import PRETRAIN_CATEGORIES, TRANSFER_CATEGORIES, write_imagenet, wnid
from .scenes import CATEGORIES, Scene, SceneObject, category_name, image_rng, render_scene

__all__ = ["CATEGORIES", "PRETRAIN_CATEGORIES", "TRANSFER_CATEGORIES", "Scene", "SceneObject",
           "category_name", "image_rng", "render_scene", "write_imagenet", "wnid"]

"""Generated demo data in the real on-disk formats: ImageNet folders, COCO
instances, ADE20K semantic maps, all rendered from the same scenes."""
from .ade20k import write_ade20k
from .coco import write_coco
from .imagenet import PRETRAIN_CATEGORIES, TRANSFER_CATEGORIES, write_imagenet, wnid
from .scenes import CATEGORIES, Scene, SceneObject, category_name, image_rng, render_scene

__all__ = ["CATEGORIES", "PRETRAIN_CATEGORIES", "TRANSFER_CATEGORIES", "Scene", "SceneObject",
           "category_name", "image_rng", "render_scene", "write_ade20k", "write_coco", "write_imagenet", "wnid"]

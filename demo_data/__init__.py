"""Generated demo data in the real on-disk formats: ImageNet folders, COCO
instances, ADE20K semantic maps and a classification-transfer split
(ImageFolder layout), all rendered from the same scenes."""
from .ade20k import write_ade20k
from .coco import write_coco
from .everything import DATA_SETS, write_demo_data, write_study_data
from .imagenet import PRETRAIN_CATEGORIES, TRANSFER_CATEGORIES, folder_name, wnid, write_imagenet, write_transfer
from .scenes import CATEGORIES, Scene, SceneObject, category_name, image_rng, render_scene

__all__ = ["CATEGORIES", "DATA_SETS", "PRETRAIN_CATEGORIES", "TRANSFER_CATEGORIES", "Scene", "SceneObject",
           "category_name", "folder_name", "image_rng", "render_scene", "write_ade20k", "write_coco", "write_imagenet",
           "write_demo_data", "write_study_data", "write_transfer", "wnid"]

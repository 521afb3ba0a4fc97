"""The generated scenes in COCO 2017's instance-segmentation layout.

    <root>/train2017/<12-digit id>.jpg
    <root>/val2017/<12-digit id>.jpg
    <root>/annotations/instances_{train,val}2017.json

Masks are stored as compressed RLE (pycocotools' own encoding, ``iscrowd`` 0):
objects can be partly hidden by later ones, so a visible mask may have holes or
several parts, which RLE keeps exactly and a polygon would not. ``area`` is the
mask's pixel count and ``bbox`` its tight box, as in COCO.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .imagenet import PRETRAIN_CATEGORIES
from .scenes import CATEGORIES, category_name, mark_written, multi_object_scene, written_before

MIN_PIXELS = 16  # smaller visible remnants are not annotated


def _split(root: Path, split: str, categories: Sequence[int], n: int, size: int, seed: int,
           objects_per_image: Tuple[int, int], scale: Tuple[float, float], first_id: int) -> dict:
    folder = root / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = 1
    for index in range(n):
        scene = multi_object_scene(seed, f"coco-{split}", index, categories, size, objects_per_image, scale)
        image_id = first_id + index
        name = f"{image_id:012d}.jpg"
        Image.fromarray(scene.image).save(folder / name, quality=90)
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        for obj in scene.objects:
            if obj.area < MIN_PIXELS:
                continue
            rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            x0, y0, x1, y1 = obj.box
            annotations.append({
                "id": ann_id, "image_id": image_id, "category_id": categories.index(obj.category) + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float(obj.area), "iscrowd": 0,
                "segmentation": rle})
            ann_id += 1
    return {"info": {"description": "dropout-transfer generated demo data", "version": "1.0"},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": category_name(c), "supercategory": CATEGORIES[c][0]}
                           for i, c in enumerate(categories)]}


def write_coco(root, categories: Sequence[int] = PRETRAIN_CATEGORIES, *, train_images: int = 200,
               val_images: int = 50, size: int = 128, seed: int = 0,
               objects_per_image: Tuple[int, int] = (1, 4), scale: Tuple[float, float] = (0.12, 0.3)) -> Dict:
    """Write the COCO folders (skipping the work if the same spec is already there)."""
    root = Path(root)
    categories = list(categories)
    spec = dict(categories=categories, train_images=train_images, val_images=val_images, size=size, seed=seed,
                objects_per_image=list(objects_per_image), scale=list(scale), layout="coco")
    if written_before(root, spec):
        return spec
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, n, first_id in (("train", train_images, 1), ("val", val_images, 1_000_001)):
        data = _split(root, split, categories, n, size, seed, objects_per_image, scale, first_id)
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    mark_written(root, spec)
    return spec

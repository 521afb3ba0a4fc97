"""The generated scenes in COCO 2017's instance-segmentation layout.

    <root>/train2017/<12-digit id>.jpg
    <root>/val2017/<12-digit id>.jpg
    <root>/annotations/instances_{train,val}2017.json

Masks are stored as compressed RLE (pycocotools' own encoding, ``iscrowd`` 0,
``counts`` as a str so that json can hold it): objects can be partly hidden by
later ones, so a visible mask may have holes or several parts, which RLE keeps
exactly and a traced polygon would only approximate. pycocotools, mmdet's
LoadAnnotations and COCOeval all read RLE for ``iscrowd`` 0 as well as polygons.
``area`` is the mask's pixel count and ``bbox`` its tight box [x, y, w, h], as in
COCO. Category ids start at 1, in the order of ``categories``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .imagenet import PRETRAIN_CATEGORIES
from .scenes import CATEGORIES, category_name, mark_written, multi_object_scene, multi_object_spec, written_before

MIN_PIXELS = 16  # smaller visible remnants are not annotated
SPLITS = (("train", 1), ("val", 1_000_001))  # (split, first image id): ids unique across splits


def _annotate(root: Path, split: str, first_id: int, categories: Sequence[int], n: int, size: int,
              seed: int, objects_per_image: Tuple[int, int], scale: Tuple[float, float]) -> dict:
    """Write one split's images; return its instances json."""
    folder = root / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    # Images of an earlier, larger spec would linger otherwise.
    for stale in folder.glob("[0-9]" * 12 + ".jpg"):
        stale.unlink()
    category_id = {c: k + 1 for k, c in enumerate(categories)}
    images, annotations = [], []
    for index in range(n):
        # image_rng(seed, "coco-<split>", index): count, categories, then the rendering.
        scene = multi_object_scene(seed, f"coco-{split}", index, categories, size, objects_per_image, scale)
        image_id = first_id + index
        name = f"{image_id:012d}.jpg"
        Image.fromarray(scene.image).save(folder / name, quality=90)
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        for obj in scene.objects:
            if obj.area < MIN_PIXELS:
                continue
            # pycocotools wants a Fortran-ordered uint8 HxW array.
            rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            x0, y0, x1, y1 = obj.box
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": category_id[obj.category],
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float(obj.area), "iscrowd": 0,
                "segmentation": rle})
    return {"info": {"description": "dropout-transfer generated demo data", "version": "1.0"},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": [{"id": category_id[c], "name": category_name(c), "supercategory": CATEGORIES[c][0]}
                           for c in categories]}


def write_coco(root, categories: Sequence[int] = PRETRAIN_CATEGORIES, *, train_images: int = 200,
               val_images: int = 50, size: int = 128, seed: int = 0,
               objects_per_image: Tuple[int, int] = (1, 4), scale: Tuple[float, float] = (0.12, 0.3)) -> Dict:
    """Write the COCO folders (skipping the work if the same spec is already there).

    Each image has between ``objects_per_image[0]`` and ``[1]`` objects (inclusive)
    of categories drawn from ``categories``; ``scale`` is the object radius as a
    fraction of ``size``. Returns the spec, as stored in ``<root>/manifest.json``."""
    root = Path(root)
    spec = multi_object_spec("coco", categories, train_images, val_images, size, seed, objects_per_image, scale)
    if written_before(root, spec):
        return spec
    categories = spec["categories"]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for (split, first_id), n in zip(SPLITS, (train_images, val_images)):
        data = _annotate(root, split, first_id, categories, n, size, seed, objects_per_image, scale)
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    mark_written(root, spec)
    return spec

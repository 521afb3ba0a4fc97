"""The generated scenes in ADE20K's layout, as mmsegmentation reads it.

    <root>/images/{training,validation}/ADE_{train,val}_<8 digits>.jpg
    <root>/annotations/{training,validation}/ADE_{train,val}_<8 digits>.png
    <root>/classes.json      (class names in label order: label k+1 = classes[k])

Annotations are single-channel uint8 PNGs with ADE20K's convention: 0 is
"other" (ignored with ``reduce_zero_label=True``), the k-th category is k + 1.
Later objects cover earlier ones, as in the image.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
from PIL import Image

from .imagenet import PRETRAIN_CATEGORIES
from .scenes import Scene, category_name, mark_written, multi_object_scene, written_before

SPLITS = (("training", "train"), ("validation", "val"))


def label_map(scene: Scene, categories: Sequence[int]) -> np.ndarray:
    """ADE20K-style labels of a scene: 0 background, k + 1 for categories[k]."""
    labels = np.zeros(scene.image.shape[:2], np.uint8)
    for obj in scene.objects:
        labels[obj.mask] = list(categories).index(obj.category) + 1
    return labels


def write_ade20k(root, categories: Sequence[int] = PRETRAIN_CATEGORIES, *, train_images: int = 200,
                 val_images: int = 50, size: int = 128, seed: int = 0,
                 objects_per_image: Tuple[int, int] = (1, 4), scale: Tuple[float, float] = (0.12, 0.3)) -> Dict:
    """Write the ADE20K folders (skipping the work if the same spec is already there)."""
    root = Path(root)
    categories = list(categories)
    spec = dict(categories=categories, train_images=train_images, val_images=val_images, size=size, seed=seed,
                objects_per_image=list(objects_per_image), scale=list(scale), layout="ade20k")
    if written_before(root, spec):
        return spec
    for (split, short), n in zip(SPLITS, (train_images, val_images)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for index in range(n):
            scene = multi_object_scene(seed, f"ade-{split}", index, categories, size, objects_per_image, scale)
            stem = f"ADE_{short}_{index + 1:08d}"
            Image.fromarray(scene.image).save(root / "images" / split / f"{stem}.jpg", quality=90)
            Image.fromarray(label_map(scene, categories), mode="L").save(root / "annotations" / split / f"{stem}.png")
    (root / "classes.json").write_text(json.dumps([category_name(c) for c in categories], indent=1))
    mark_written(root, spec)
    return spec

"""The generated scenes in ADE20K's layout, as mmsegmentation 1.x reads it.

    <root>/images/{training,validation}/ADE_{train,val}_<8 digits>.jpg
    <root>/annotations/{training,validation}/ADE_{train,val}_<8 digits>.png
    <root>/classes.json      (class names in label order: label k+1 = classes[k])

Annotations are single-channel ("L") uint8 PNGs with ADE20K's convention: 0 is
"other" (ignored with ``reduce_zero_label=True``), the k-th entry of
``categories`` is k + 1. Later objects cover earlier ones, as in the image.
mmseg's BaseSegDataset pairs the files by stem, with ``metainfo=dict(classes=...)``
from classes.json (ADE20KDataset itself insists on ADE's own 150 names).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
from PIL import Image

from .imagenet import PRETRAIN_CATEGORIES
from .scenes import Scene, category_name, mark_written, multi_object_scene, multi_object_spec, written_before

SPLITS = (("training", "train"), ("validation", "val"))  # (folder, file-name tag), as ADE20K names them


def label_map(scene: Scene, categories: Sequence[int]) -> np.ndarray:
    """ADE20K-style labels of a scene: 0 background, k + 1 for categories[k]."""
    label = {c: k + 1 for k, c in enumerate(categories)}
    labels = np.zeros(scene.image.shape[:2], np.uint8)
    # The visible masks are disjoint already (occlusion is applied when rendering);
    # painting in order keeps "later covers earlier" even if they were not.
    for obj in scene.objects:
        labels[obj.mask] = label[obj.category]
    return labels


def write_ade20k(root, categories: Sequence[int] = PRETRAIN_CATEGORIES, *, train_images: int = 200,
                 val_images: int = 50, size: int = 128, seed: int = 0,
                 objects_per_image: Tuple[int, int] = (1, 4), scale: Tuple[float, float] = (0.12, 0.3)) -> Dict:
    """Write the ADE20K folders (skipping the work if the same spec is already there).

    Each image has between ``objects_per_image[0]`` and ``[1]`` objects (inclusive)
    of categories drawn from ``categories``; ``scale`` is the object radius as a
    fraction of ``size``. Returns the spec, as stored in ``<root>/manifest.json``."""
    root = Path(root)
    spec = multi_object_spec("ade20k", categories, train_images, val_images, size, seed, objects_per_image, scale)
    if written_before(root, spec):
        return spec
    categories = spec["categories"]
    for (split, short), n in zip(SPLITS, (train_images, val_images)):
        images, annotations = root / "images" / split, root / "annotations" / split
        for folder, suffix in ((images, "jpg"), (annotations, "png")):
            folder.mkdir(parents=True, exist_ok=True)
            # mmseg lists the folder, so files of an earlier, larger spec would be read too.
            for stale in folder.glob(f"ADE_{short}_{'[0-9]' * 8}.{suffix}"):
                stale.unlink()
        for index in range(n):
            # image_rng(seed, "ade-<training|validation>", index): count, categories, rendering.
            scene = multi_object_scene(seed, f"ade-{split}", index, categories, size, objects_per_image, scale)
            stem = f"ADE_{short}_{index + 1:08d}"  # ADE20K numbers from 1
            Image.fromarray(scene.image).save(images / f"{stem}.jpg", quality=90)
            # A 2-D uint8 array saves as a mode "L" PNG; lossless, so labels read back exactly.
            Image.fromarray(label_map(scene, categories)).save(annotations / f"{stem}.png")
    (root / "classes.json").write_text(json.dumps([category_name(c) for c in categories], indent=1))
    mark_written(root, spec)
    return spec

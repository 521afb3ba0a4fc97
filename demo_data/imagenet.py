"""The generated scenes in ImageNet-1K's on-disk layout.

    <root>/train/<wnid>/<wnid>_<k>.JPEG
    <root>/val/<wnid>/ILSVRC2012_val_<k>.JPEG       (the usual class-folder val layout)
    <root>/LOC_synset_mapping.txt                   ("<wnid> <name>" per line, as ImageNet ships)
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Sequence

from PIL import Image

from .scenes import CATEGORIES, category_name, image_rng, mark_written, render_scene, written_before

# Pretraining sees shapes of the first four kinds; the classification-transfer
# split (cls_finetune) gets the other shapes: new classes, same rendering.
PRETRAIN_CATEGORIES = tuple(i for i, (s, _) in enumerate(CATEGORIES)
                            if s in ("circle", "square", "triangle", "diamond"))
TRANSFER_CATEGORIES = tuple(i for i in range(len(CATEGORIES)) if i not in PRETRAIN_CATEGORIES)


def wnid(category: int) -> str:
    """A WordNet-like id, so tools that expect ImageNet folder names see one."""
    return f"n9{category:07d}"


def write_imagenet(root: Path, categories: Sequence[int] = PRETRAIN_CATEGORIES, *,
                   train_per_class: int = 100, val_per_class: int = 20, size: int = 64,
                   seed: int = 0) -> Dict:
    """Write the folders (skipping the work if the same spec is already there)."""
    root = Path(root)
    spec = dict(categories=list(categories), train_per_class=train_per_class,
                val_per_class=val_per_class, size=size, seed=seed, layout="imagenet")
    if written_before(root, spec):
        return spec
    # ImageFolder reads every class folder: clear what an earlier spec wrote.
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for stale in (root / split).glob("n9" + "[0-9]" * 7):
            shutil.rmtree(stale)
        for c_pos, cat in enumerate(categories):
            folder = root / split / wnid(cat)
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                index = c_pos * per_class + k
                scene = render_scene(image_rng(seed, f"imagenet-{split}", index), size, [cat])
                name = f"{wnid(cat)}_{k}.JPEG" if split == "train" else f"ILSVRC2012_val_{index:08d}.JPEG"
                Image.fromarray(scene.image).save(folder / name, quality=90)
    (root / "LOC_synset_mapping.txt").write_text(
        "".join(f"{wnid(c)} {category_name(c)}\n" for c in categories))
    mark_written(root, spec)
    return spec

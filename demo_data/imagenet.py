"""The generated scenes as class folders: ImageNet-1K's on-disk layout for
pretraining, and a classification-transfer split (new classes, same rendering)
for cls_finetune, in the ``ImageFolder`` layout torchvision reads.

    <root>/train/<wnid>/<wnid>_<k>.JPEG            write_imagenet
    <root>/val/<wnid>/ILSVRC2012_val_<k>.JPEG       (the usual class-folder val layout)
    <root>/LOC_synset_mapping.txt                   ("<wnid> <name>" per line, as ImageNet ships)

    <root>/train/<class_name>/<k>.jpg               write_transfer
    <root>/test/<class_name>/<k>.jpg
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Dict, Sequence

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


def folder_name(category: int) -> str:
    """Class folder of the transfer split, e.g. ``stripes_cross``."""
    return category_name(category).replace(" ", "_")


def _write_class_folders(root: Path, spec: dict, categories: Sequence[int], per_split: Dict[str, int],
                         folder: Callable[[int], str], file: Callable[[str, int, int, int], str],
                         tag: str, size: int, seed: int) -> bool:
    """Render ``per_split[split]`` images per category into ``root/split/folder(cat)/``;
    False when the same spec is already on disk."""
    if written_before(root, spec):
        return False
    for split, per_class in per_split.items():
        # ImageFolder reads every class folder: clear those an earlier spec wrote
        # (and only those: the folder may hold other things).
        ours = {folder(c) for c in range(len(CATEGORIES))}
        for stale in (root / split).glob("*"):
            if stale.is_dir() and stale.name in ours:
                shutil.rmtree(stale)
        for c_pos, cat in enumerate(categories):
            out = root / split / folder(cat)
            out.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                index = c_pos * per_class + k
                scene = render_scene(image_rng(seed, f"{tag}-{split}", index), size, [cat])
                Image.fromarray(scene.image).save(out / file(split, cat, k, index), quality=90)
    return True


def write_imagenet(root: Path, categories: Sequence[int] = PRETRAIN_CATEGORIES, *,
                   train_per_class: int = 100, val_per_class: int = 20, size: int = 64,
                   seed: int = 0) -> Dict:
    """Write the folders (skipping the work if the same spec is already there)."""
    root = Path(root)
    spec = dict(categories=list(categories), train_per_class=train_per_class,
                val_per_class=val_per_class, size=size, seed=seed, layout="imagenet")

    def file(split: str, cat: int, k: int, index: int) -> str:
        return f"{wnid(cat)}_{k}.JPEG" if split == "train" else f"ILSVRC2012_val_{index:08d}.JPEG"

    if _write_class_folders(root, spec, categories, {"train": train_per_class, "val": val_per_class},
                            wnid, file, "imagenet", size, seed):
        (root / "LOC_synset_mapping.txt").write_text(
            "".join(f"{wnid(c)} {category_name(c)}\n" for c in categories))
        mark_written(root, spec)
    return spec


def write_transfer(root: Path, categories: Sequence[int] = TRANSFER_CATEGORIES, *,
                   train_per_class: int = 60, test_per_class: int = 20, size: int = 64,
                   seed: int = 0) -> Dict:
    """The classification-transfer split: classes pretraining never saw."""
    root = Path(root)
    spec = dict(categories=list(categories), train_per_class=train_per_class,
                test_per_class=test_per_class, size=size, seed=seed, layout="imagefolder-transfer")
    if _write_class_folders(root, spec, categories, {"train": train_per_class, "test": test_per_class},
                            folder_name, lambda split, cat, k, index: f"{split}_{index:06d}.jpg",
                            "transfer", size, seed):
        mark_written(root, spec)
    return spec

"""The demo's data set: every writer at the sizes the demo and the CPU presets use."""
from __future__ import annotations

from pathlib import Path
from typing import List

from .ade20k import write_ade20k
from .coco import write_coco
from .imagenet import TRANSFER_CATEGORIES, write_imagenet, write_transfer


def write_demo_data(root, seed: int = 0) -> List[str]:
    """Write (or keep, when already there) the demo data under ``root``; one line
    per part, saying what it is."""
    root = Path(root)
    write_imagenet(root / "imagenet", train_per_class=150, val_per_class=30, size=64, seed=seed)
    write_transfer(root / "transfer", train_per_class=60, test_per_class=20, size=64, seed=seed)
    write_coco(root / "coco", train_images=64, val_images=24, size=128, seed=seed)
    write_ade20k(root / "ade20k", train_images=64, val_images=24, size=128, seed=seed)
    return [f"{root / 'imagenet'}: ImageNet layout, 12 classes x 150 train / 30 val images, 64x64 (pretraining)",
            f"{root / 'transfer'}: ImageFolder layout, {len(TRANSFER_CATEGORIES)} new classes x 60 train / "
            "20 test images, 64x64 (classification transfer)",
            f"{root / 'coco'}: COCO 2017 layout, 64 train / 24 val images, 128x128 (Mask R-CNN)",
            f"{root / 'ade20k'}: ADE20K layout, 64 train / 24 val images, 128x128 (UperNet)"]

"""The generated data sets: every writer at the sizes the demo, the CPU presets and
the laptop study (suites/study_cpu.yaml) use."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List

from .ade20k import write_ade20k
from .coco import write_coco
from .imagenet import PRETRAIN_CATEGORIES, TRANSFER_CATEGORIES, write_imagenet, write_transfer


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


# The laptop study's sizes (README, "The laptop study"): many more distinct training images
# than its small model can fit in its budget (underfitting), and evaluation sets large
# enough that their binomial standard error stays under 0.5 points at any accuracy
# (sqrt(0.25 / n) < 0.005 needs n > 10,000).
STUDY = dict(size=32, train_per_class=2000, val_per_class=850, transfer_train_per_class=100,
             transfer_test_per_class=1700)


def write_study_data(root, seed: int = 0) -> List[str]:
    """Write (or keep) the laptop study's data under ``root``."""
    root, s = Path(root), STUDY
    write_imagenet(root / "imagenet", train_per_class=s["train_per_class"], val_per_class=s["val_per_class"],
                   size=s["size"], seed=seed)
    write_transfer(root / "transfer", train_per_class=s["transfer_train_per_class"],
                   test_per_class=s["transfer_test_per_class"], size=s["size"], seed=seed)
    n_pre, n_tr = len(PRETRAIN_CATEGORIES), len(TRANSFER_CATEGORIES)
    return [f"{root / 'imagenet'}: ImageNet layout, {n_pre} classes x {s['train_per_class']} train / "
            f"{s['val_per_class']} val images, {s['size']}x{s['size']} (the study's pretraining)",
            f"{root / 'transfer'}: ImageFolder layout, {n_tr} new classes x {s['transfer_train_per_class']} train / "
            f"{s['transfer_test_per_class']} test images, {s['size']}x{s['size']} (the study's transfer)"]


DATA_SETS: Dict[str, Callable[..., List[str]]] = {"demo": write_demo_data, "study": write_study_data}

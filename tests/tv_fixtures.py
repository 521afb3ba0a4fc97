"""Tiny copies of the classification-transfer datasets in their real on-disk
formats, for torchvision's own classes to read (``download=False``).

Each writer takes the ``root`` one passes to the torchvision class and returns
``{"root", "num_classes", "train", "test", "classes"}`` (+ ``"val"`` where the
dataset has that split): ``num_classes`` classes with images in every split,
``classes`` as torchvision will report them. Images are a class colour plus
noise under a white top band (``palette``), so a test can check what the class
decodes and a classifier can tell the classes apart. CIFAR's, Flowers-102's and
STL-10's md5 sums cannot match these files: load them with ``check_md5=False``.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Dict, List

import numpy as np
from PIL import Image
from scipy.io import savemat

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_NAMES = ["apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle"]
CIFAR100_COARSE = ["fruit_and_vegetables", "fish", "people", "large_omnivores", "aquatic_mammals",
                   "household_furniture", "insects", "insects", "vehicles_1", "food_containers"]
# (file-name prefix, species: 1 cat / 2 dog) of the first Pets breeds, in class-id order.
PETS_BREEDS = [("Abyssinian", 1), ("american_bulldog", 2), ("american_pit_bull_terrier", 2), ("basset_hound", 2),
               ("beagle", 2), ("Bengal", 1), ("Birman", 1), ("Bombay", 1)]
STL10_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
FOOD101_NAMES = ["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad"]
DTD_NAMES = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked"]


def palette(n_classes: int) -> np.ndarray:
    """The colour of class k (RGB, 30..180 per channel: well below the white band)."""
    return np.random.default_rng(1234).integers(30, 181, size=(max(n_classes, 1), 3))


def _images(n_classes: int, per_class: int, size: int, rng: np.random.Generator):
    """(uint8 HxWx3 images, labels): class k is its colour plus noise, under a
    white band over the top quarter, so a reader that swaps channels, mixes up
    labels or transposes the image gets caught."""
    labels = np.repeat(np.arange(n_classes), per_class)
    noise = rng.integers(-25, 26, size=(len(labels), size, size, 3))
    images = np.clip(palette(n_classes)[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    images[:, : size // 4] = 255
    return images, labels


def _save_jpg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def _info(root, num_classes, train, test, classes, **extra) -> Dict:
    return {"root": str(root), "num_classes": num_classes, "train": train, "test": test,
            "classes": list(classes), **extra}


# ---- CIFAR: python pickles of N x 3072 uint8 rows (red plane, green, blue) -----------------

def _cifar_rows(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(root, *, num_classes=3, train_per_class=4, test_per_class=2, size=32, seed=0) -> Dict:
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    train, train_y = _images(num_classes, train_per_class, 32, rng)
    test, test_y = _images(num_classes, test_per_class, 32, rng)
    order = rng.permutation(len(train))  # the five batches each get a share of every class
    for b, part in enumerate(np.array_split(order, 5), 1):
        _pickle(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5",
                                            "data": _cifar_rows(train[part]), "labels": train_y[part].tolist()})
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": _cifar_rows(test),
                                    "labels": test_y.tolist()})
    names = CIFAR10_NAMES[:num_classes]
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": len(train) // 5,
                                      "num_vis": 3072})
    return _info(root, num_classes, len(train), len(test), names)


def write_cifar100(root, *, num_classes=3, train_per_class=4, test_per_class=2, size=32, seed=0) -> Dict:
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    names = CIFAR100_NAMES[:num_classes]
    coarse = CIFAR100_COARSE[:num_classes]
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, labels = _images(num_classes, per_class, 32, rng)
        _pickle(folder / split, {"data": _cifar_rows(images), "fine_labels": labels.tolist(),
                                 "coarse_labels": [sorted(set(coarse)).index(coarse[k]) for k in labels]})
    _pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": sorted(set(coarse))})
    return _info(root, num_classes, num_classes * train_per_class, num_classes * test_per_class, names)


# ---- Flowers-102: jpg/image_<id>.jpg + 1-based labels and split ids in .mat files ---------

def write_flowers102(root, *, num_classes=3, train_per_class=4, test_per_class=2, val_per_class=1, size=32,
                     seed=0) -> Dict:
    from torchvision.datasets import Flowers102
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "flowers-102"
    labels, ids = [], {}
    for key, per_class in (("trnid", train_per_class), ("valid", val_per_class), ("tstid", test_per_class)):
        images, y = _images(num_classes, per_class, size, rng)
        ids[key] = []
        for image, label in zip(images, y):
            labels.append(int(label) + 1)
            ids[key].append(len(labels))
            _save_jpg(folder / "jpg" / f"image_{len(labels):05d}.jpg", image)
    # Row vectors, as in the official files (torchvision loads them with squeeze_me=True).
    savemat(folder / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    savemat(folder / "setid.mat", {k: np.array([v], dtype=np.uint16) for k, v in ids.items()})
    return _info(root, num_classes, len(ids["trnid"]), len(ids["tstid"]), Flowers102.classes,
                 val=len(ids["valid"]))


# ---- Oxford-IIIT Pets: images/<Breed>_<k>.jpg + annotations/{trainval,test}.txt -----------

def write_pets(root, *, num_classes=3, train_per_class=4, test_per_class=2, size=32, seed=0) -> Dict:
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "oxford-iiit-pet"
    (folder / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    counter = {}
    for split, per_class in (("trainval", train_per_class), ("test", test_per_class)):
        images, y = _images(num_classes, per_class, size, rng)
        lines = []
        for image, label in zip(images, y):
            breed, species = PETS_BREEDS[label]
            counter[breed] = counter.get(breed, 0) + 1
            image_id = f"{breed}_{counter[breed]}"
            _save_jpg(folder / "images" / f"{image_id}.jpg", image)
            breed_id = sum(1 for b, s in PETS_BREEDS[:label + 1] if s == species)  # id within the species
            lines.append(f"{image_id} {label + 1} {species} {breed_id}")
        (folder / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    classes = [" ".join(part.title() for part in breed.split("_")) for breed, _ in PETS_BREEDS[:num_classes]]
    return _info(root, num_classes, num_classes * train_per_class, num_classes * test_per_class, classes)


# ---- STL-10: stl10_binary/*_X.bin (N x 3 x 96 x 96, column-major), 1-based *_y.bin ---------

def _stl_bin(images: np.ndarray) -> bytes:
    return np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes()  # N, C, W, H


def write_stl10(root, *, num_classes=3, train_per_class=4, test_per_class=2, size=96, seed=0) -> Dict:
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, y = _images(num_classes, per_class, 96, rng)  # the format is 96x96 only
        (folder / f"{split}_X.bin").write_bytes(_stl_bin(images))
        (folder / f"{split}_y.bin").write_bytes((y + 1).astype(np.uint8).tobytes())
    # torchvision checks that the unlabeled part exists even when only 'train' is asked for.
    (folder / "unlabeled_X.bin").write_bytes(_stl_bin(_images(1, 1, 96, rng)[0]))
    names = STL10_NAMES[:num_classes]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    folds = np.arange(num_classes * train_per_class)
    (folder / "fold_indices.txt").write_text("".join(" ".join(map(str, folds)) + " \n" for _ in range(10)))
    return _info(root, num_classes, num_classes * train_per_class, num_classes * test_per_class, names)


# ---- Food-101: images/<class>/<id>.jpg + meta/{train,test}.json, classes.txt ---------------

def write_food101(root, *, num_classes=3, train_per_class=4, test_per_class=2, size=32, seed=0) -> Dict:
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "food-101"
    names = FOOD101_NAMES[:num_classes]
    next_id = 100000
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, y = _images(num_classes, per_class, size, rng)
        meta: Dict[str, List[str]] = {name: [] for name in names}
        for image, label in zip(images, y):
            next_id += 1
            meta[names[label]].append(f"{names[label]}/{next_id}")
            _save_jpg(folder / "images" / names[label] / f"{next_id}.jpg", image)
        (folder / "meta").mkdir(parents=True, exist_ok=True)
        (folder / "meta" / f"{split}.json").write_text(json.dumps(meta))
        (folder / "meta" / f"{split}.txt").write_text("".join(f"{p}\n" for ps in meta.values() for p in ps))
    (folder / "meta" / "classes.txt").write_text("\n".join(names) + "\n")
    return _info(root, num_classes, num_classes * train_per_class, num_classes * test_per_class, sorted(names))


# ---- DTD: dtd/dtd/images/<class>/<class>_<k>.jpg + labels/{train,val,test}<partition>.txt ---

def write_dtd(root, *, num_classes=3, train_per_class=4, test_per_class=2, val_per_class=1, size=32,
              seed=0) -> Dict:
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "dtd" / "dtd"
    names = DTD_NAMES[:num_classes]
    counts = {}
    sizes = {}
    for split, per_class in (("train", train_per_class), ("val", val_per_class), ("test", test_per_class)):
        images, y = _images(num_classes, per_class, size, rng)
        lines = []
        for image, label in zip(images, y):
            name = names[label]
            counts[name] = counts.get(name, 0) + 1
            file = f"{name}_{counts[name]:04d}.jpg"
            _save_jpg(folder / "images" / name / file, image)
            lines.append(f"{name}/{file}")
        (folder / "labels").mkdir(parents=True, exist_ok=True)
        for partition in range(1, 11):  # the official archive ships ten partitions
            (folder / "labels" / f"{split}{partition}.txt").write_text("\n".join(lines) + "\n")
        sizes[split] = len(lines)
    return _info(root, num_classes, sizes["train"], sizes["test"], names, val=sizes["val"])


WRITERS = {"cifar10": write_cifar10, "cifar100": write_cifar100, "flowers102": write_flowers102,
           "pets": write_pets, "stl10": write_stl10, "food101": write_food101, "dtd": write_dtd}

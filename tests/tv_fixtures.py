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
# ClassName.txt lines (one nested scene category, as SUN397 has: its label joins both folders).
SUN397_NAMES = ["/a/abbey", "/a/airplane_cabin", "/a/apartment_building/outdoor", "/a/airport_terminal",
                "/a/alley", "/a/amphitheater"]
CARS_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012",
              "Acura TL Type-S 2008", "Acura TSX Sedan 2012", "Acura Integra Type R 2001"]
AIRCRAFT_VARIANTS = ["707-320", "727-200", "737-200", "737-300", "737-400", "737-500"]
BIRDSNAP_SPECIES = ["Acadian_Flycatcher", "Acorn_Woodpecker", "Alder_Flycatcher", "Allens_Hummingbird",
                    "Altamira_Oriole", "American_Avocet"]


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


# ---- SUN397: SUN397/<letter>/<category>/sun_*.jpg, ClassName.txt, Training_01/Testing_01.txt --

def write_sun397(root, *, num_classes=3, train_per_class=4, test_per_class=2, size=32, seed=0) -> Dict:
    """Each category also holds an image in neither list of partition 1 (SUN397 has
    about 108k images; the partitions use 100 a class)."""
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "SUN397"
    names = SUN397_NAMES[:num_classes]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ClassName.txt").write_text("".join(f"{n}\n" for n in names))
    for split, per_class in (("Training", train_per_class), ("Testing", test_per_class), (None, 1)):
        images, y = _images(num_classes, per_class, size, rng)
        lines = []
        for image, label in zip(images, y):
            rel = f"{names[label]}/sun_{''.join(rng.choice(list('abcdefghijklmnopqrstuvwxyz'), 16))}.jpg"
            _save_jpg(folder / rel.lstrip("/"), image)
            lines.append(rel)
        for partition in range(1, 11) if split else ():  # Partitions.zip: ten of each
            (folder / f"{split}_{partition:02d}.txt").write_text("".join(f"{p}\n" for p in lines))
    return _info(root, num_classes, num_classes * train_per_class, num_classes * test_per_class,
                 [n[3:] for n in names])


# ---- Stanford Cars: cars_{train,test}/<id>.jpg + devkit .mat structs (1-based classes) -------

def _annotation_struct(fnames: List[str], classes: List[int]) -> np.ndarray:
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    out = np.zeros((1, len(fnames)), dtype=[(f, "O") for f in fields])
    for i, (fname, cls) in enumerate(zip(fnames, classes)):
        out[0, i] = (np.uint8(1), np.uint8(1), np.uint8(20), np.uint8(20), np.uint8(cls), fname)
    return out


def write_stanford_cars(root, *, num_classes=3, train_per_class=4, test_per_class=2, size=32, seed=0) -> Dict:
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "stanford_cars"
    (folder / "devkit").mkdir(parents=True, exist_ok=True)
    names = CARS_NAMES[:num_classes]
    savemat(folder / "devkit" / "cars_meta.mat", {"class_names": np.array([names], dtype=object)})
    for split, per_class, annos in (("train", train_per_class, folder / "devkit" / "cars_train_annos.mat"),
                                    ("test", test_per_class, folder / "cars_test_annos_withlabels.mat")):
        images, y = _images(num_classes, per_class, size, rng)
        order = rng.permutation(len(y))  # annotations are not sorted by class
        fnames = [f"{i + 1:05d}.jpg" for i in range(len(y))]
        for fname, k in zip(fnames, order):
            _save_jpg(folder / f"cars_{split}" / fname, images[k])
        savemat(annos, {"annotations": _annotation_struct(fnames, [int(y[k]) + 1 for k in order])})
    return _info(root, num_classes, num_classes * train_per_class, num_classes * test_per_class, names)


# ---- FGVC Aircraft: data/images/<id>.jpg + images_variant_<split>.txt ("<id> <variant>") ------

def write_fgvc_aircraft(root, *, num_classes=3, train_per_class=4, test_per_class=2, val_per_class=1, size=32,
                        seed=0) -> Dict:
    root, rng = Path(root), np.random.default_rng(seed)
    data = root / "fgvc-aircraft-2013b" / "data"
    names = AIRCRAFT_VARIANTS[:num_classes]
    data.mkdir(parents=True, exist_ok=True)
    (data / "variants.txt").write_text("".join(f"{n}\n" for n in names))
    next_id, sizes, lists = 1025794, {}, {}
    for split, per_class in (("train", train_per_class), ("val", val_per_class), ("test", test_per_class)):
        images, y = _images(num_classes, per_class, size, rng)
        lists[split] = []
        for image, label in zip(images, y):
            next_id += 1
            _save_jpg(data / "images" / f"{next_id:07d}.jpg", image)
            lists[split].append(f"{next_id:07d} {names[label]}")
        sizes[split] = len(y)
    lists["trainval"] = lists["train"] + lists["val"]
    for split, lines in lists.items():
        (data / f"images_variant_{split}.txt").write_text("".join(f"{line}\n" for line in lines))
    return _info(root, num_classes, sizes["train"], sizes["test"], names, val=sizes["val"])


# ---- Caltech-101: caltech101/101_ObjectCategories/<class>/image_<k>.jpg, 101 + background ----

def write_caltech101(root, *, num_classes=101, train_per_class=30, test_per_class=2, size=16, seed=0) -> Dict:
    """The protocol needs all 101 classes and 30 training images a class: the
    fixture has them, small. ``train_per_class`` is what the split takes (30)."""
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "caltech101" / "101_ObjectCategories"
    names = [f"category_{k:03d}" for k in range(num_classes)]
    images, y = _images(num_classes, train_per_class + test_per_class, size, rng)
    counts = {}
    for image, label in zip(images, y):
        counts[label] = counts.get(label, 0) + 1
        _save_jpg(folder / names[label] / f"image_{counts[label]:04d}.jpg", image)
    for k in range(3):  # not a class: torchvision leaves it out
        _save_jpg(folder / "BACKGROUND_Google" / f"image_{k + 1:04d}.jpg", images[k])
    return _info(root, num_classes, num_classes * train_per_class, num_classes * test_per_class, names)


# ---- VOC 2007: VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets/Main} ----------------------

VOC_NAMES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
             "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def _voc_xml(file: str, size: int, objects) -> str:
    objs = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{int(difficult)}</difficult><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>{size - 2}</xmax>"
        f"<ymax>{size - 2}</ymax></bndbox></object>" for name, difficult in objects)
    return (f"<annotation><folder>VOC2007</folder><filename>{file}</filename><source><database>The VOC2007 "
            f"Database</database></source><size><width>{size}</width><height>{size}</height><depth>3</depth>"
            f"</size><segmented>0</segmented>{objs}</annotation>\n")


def write_voc2007(root, *, num_classes=3, train_per_class=4, test_per_class=2, val_per_class=1, size=32,
                  seed=0) -> Dict:
    """Each image: one non-difficult object of its class k (the image's colour);
    every other image adds a difficult-only object of class k+1 (target -1) and
    every third one a non-difficult object of class k+2 (target 1). ``targets``:
    {image id: the 20 expected entries}."""
    root, rng = Path(root), np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2007"
    (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    sizes, targets, lists, next_id = {}, {}, {}, 0
    for split, per_class in (("train", train_per_class), ("val", val_per_class), ("test", test_per_class)):
        images, y = _images(num_classes, per_class, size, rng)
        lists[split] = []
        for image, label in zip(images, y):
            next_id += 1
            image_id = f"{next_id:06d}"
            objects, target = [(VOC_NAMES[label], False)], [0] * 20
            target[label] = 1
            if next_id % 2 == 0:
                objects.append((VOC_NAMES[label + 1], True))
                target[label + 1] = -1
            if next_id % 3 == 0:
                objects.append((VOC_NAMES[label + 2], False))
                target[label + 2] = 1
            _save_jpg(voc / "JPEGImages" / f"{image_id}.jpg", image)
            (voc / "Annotations").mkdir(exist_ok=True)
            (voc / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(f"{image_id}.jpg", size, objects))
            lists[split].append(image_id)
            targets[image_id] = target
        sizes[split] = len(y)
    lists["trainval"] = lists["train"] + lists["val"]
    for split, ids in lists.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return _info(root, num_classes, sizes["train"], sizes["test"], VOC_NAMES, val=sizes["val"], targets=targets,
                 order={split: lists[split] for split in ("train", "val", "test")})


# ---- Birdsnap: images/<species>/<file>.jpg (get_birdsnap.py's download) + test_images.txt ----

def write_birdsnap(root, *, num_classes=3, train_per_class=4, test_per_class=2, size=32, seed=0) -> Dict:
    """test_images.txt also lists an image that is not on disk (Birdsnap's images
    come from Flickr URLs, some of them gone)."""
    root, rng = Path(root), np.random.default_rng(seed)
    folder = root / "birdsnap"
    names = BIRDSNAP_SPECIES[:num_classes]
    test_list, rows = [], []
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, y = _images(num_classes, per_class, size, rng)
        for image, label in zip(images, y):
            rel = f"{names[label]}/{int(rng.integers(10**8, 10**9))}.jpg"
            _save_jpg(folder / "images" / rel, image)
            rows.append(f"https://farm.staticflickr.com/{rel}\t0\t{rel}\t{label + 1}")
            if split == "test":
                test_list.append(rel)
    test_list.append(f"{names[0]}/gone_from_flickr.jpg")
    (folder / "test_images.txt").write_text("path\n" + "".join(f"{p}\n" for p in test_list))
    (folder / "images.txt").write_text("url\tmd5\tpath\tspecies_id\n" + "".join(f"{r}\n" for r in rows))
    (folder / "species.txt").write_text("id\tcommon\tscientific\tdir\n" + "".join(
        f"{k + 1}\t{n.replace('_', ' ')}\t-\t{n}\n" for k, n in enumerate(names)))
    return _info(root, num_classes, num_classes * train_per_class, num_classes * test_per_class, sorted(names))


WRITERS = {"cifar10": write_cifar10, "cifar100": write_cifar100, "flowers102": write_flowers102,
           "pets": write_pets, "stl10": write_stl10, "food101": write_food101, "dtd": write_dtd,
           "sun397": write_sun397, "stanford_cars": write_stanford_cars, "fgvc_aircraft": write_fgvc_aircraft,
           "caltech101": write_caltech101, "voc2007": write_voc2007, "birdsnap": write_birdsnap}

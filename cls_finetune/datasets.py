"""Transfer datasets through torchvision's own classes, read from a local root and
never downloaded.

=============  ===============================  =================  ==========
``--dataset``  torchvision class                trained on         tested on
=============  ===============================  =================  ==========
cifar10        CIFAR10                          train (50,000)     test
cifar100       CIFAR100                         train (50,000)     test
flowers102     Flowers102                       train + val        test
pets           OxfordIIITPet (category)         trainval           test
stl10          STL10                            train (5,000)      test
food101        Food101                          train              test
dtd            DTD (partition 1)                train + val        test
sun397         SUN397, partition 1              Training_01.txt    Testing_01.txt
stanford_cars  StanfordCars                     train              test
fgvc_aircraft  FGVCAircraft (variant)           train + val        test
caltech101     Caltech101 (no background)       30 a class         the rest
voc2007        VOCDetection 2007 (multi-label)  train + val        test
birdsnap       ImageFolder + test_images.txt    the rest           the list
imagefolder    ImageFolder                      <root>/train       <root>/test (or val)
=============  ===============================  =================  ==========

Flowers-102, DTD, FGVC Aircraft and VOC 2007 train on train + val, the usual
protocol once hyperparameters are fixed; their official val split is the
validation split of the fixed-feature protocol (``TransferSplits.val_indices``).
The official test split is always the one reported. SUN397 and Caltech-101 have
no split in torchvision's class: SUN397 takes the first of the ten published
partitions (``Training_01.txt``/``Testing_01.txt``, 50 + 50 images a class),
Caltech-101 draws 30 training images a class with a fixed seed
(``CALTECH101_SEED``; the rest is test), as Kornblith et al. (2019). VOC 2007
targets are multi-label (``MULTILABEL``): 1 for a class with a non-difficult
object in the image, 0 for a class absent from it, -1 for a class with only
difficult objects, which the loss and the VOC metric ignore (the devkit's
classification ground truth marks those images 0, "difficult", and leaves them
out of that class's AP).

CIFAR-10/100, Flowers-102 and STL-10 verify md5 sums of their files in
torchvision. ``check_md5=False`` (flag ``--check_md5 false``) loads them through
subclasses whose file lists carry no sums, so only the files' presence is
checked: for a re-packed copy, and for the tests' tiny fixtures in the real
format. Pets, Food-101, DTD and ImageFolder have no sums to check. The sums are
verified once per process: torchvision's first construction checks every file
of the dataset, so the other splits are built by the presence-checked classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torchvision.datasets as tvd
from PIL import UnidentifiedImageError
from torch.utils.data import ConcatDataset, Dataset

from training.data import DataError, SafeImageFolder, check_image_folder

__all__ = ["DATASETS", "DatasetSpec", "TransferSplits", "build_splits", "MULTILABEL", "VOC_CLASSES",
           "CALTECH101_SEED"]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    make: Callable[..., Dataset]            # make(root, split, transform, check_md5) -> torchvision dataset
    train_splits: Tuple[str, ...]
    test_split: str
    expected: Tuple[str, ...]              # paths under root that torchvision reads (folders end in /)
    source: str                            # where to get it
    multilabel: bool = False               # targets: one {1, 0, -1 ignored} entry per class


def _presence_checked(cls, **lists):
    """A subclass of ``cls`` whose md5 entries are None, so torchvision checks only
    that the files exist. Its name is the module attribute it is bound to below,
    so that DataLoader workers started by spawn or forkserver can unpickle it."""
    return type(f"{cls.__name__}PresenceChecked", (cls,), {**lists, "__module__": __name__})


def _no_sums(files):
    return [[name, None] for name, _ in files]


CIFAR10PresenceChecked = _presence_checked(
    tvd.CIFAR10, train_list=_no_sums(tvd.CIFAR10.train_list), test_list=_no_sums(tvd.CIFAR10.test_list),
    meta={**tvd.CIFAR10.meta, "md5": None})
CIFAR100PresenceChecked = _presence_checked(
    tvd.CIFAR100, train_list=_no_sums(tvd.CIFAR100.train_list), test_list=_no_sums(tvd.CIFAR100.test_list),
    meta={**tvd.CIFAR100.meta, "md5": None})
STL10PresenceChecked = _presence_checked(
    tvd.STL10, train_list=_no_sums(tvd.STL10.train_list), test_list=_no_sums(tvd.STL10.test_list))
Flowers102PresenceChecked = _presence_checked(
    tvd.Flowers102, _file_dict={k: (f, None) for k, (f, _) in tvd.Flowers102._file_dict.items()})


def _cifar(cls, cls_no_md5):
    def make(root, split, transform, check_md5):
        return (cls if check_md5 else cls_no_md5)(root, train=split == "train", transform=transform,
                                                   download=False)
    return make


def _split_kw(cls, cls_no_md5=None, **fixed):
    def make(root, split, transform, check_md5):
        chosen = cls if check_md5 or cls_no_md5 is None else cls_no_md5
        return chosen(root, split=split, transform=transform, download=False, **fixed)
    return make


class Selected(Dataset):
    """The samples ``indices`` of a torchvision dataset, in that order (a split that
    torchvision's class does not provide), keeping ``classes`` and the image paths."""

    def __init__(self, base: Dataset, indices: Sequence[int], classes: List[str], files: Sequence[str]):
        self.base, self.indices, self.classes = base, list(indices), list(classes)
        self._image_files = [files[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.base[self.indices[index]]


# ---- SUN397: torchvision reads every image; the split is the first published partition ------

SUN397_PARTITION = 1


def _sun397(root, split, transform, check_md5):
    base = tvd.SUN397(root, transform=transform, download=False)
    data_dir = Path(base._data_dir)
    where = {"/" + p.relative_to(data_dir).as_posix(): i for i, p in enumerate(base._image_files)}
    listing = data_dir / f"{'Training' if split == 'train' else 'Testing'}_{SUN397_PARTITION:02d}.txt"
    names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    missing = [n for n in names if n not in where]
    if missing:
        raise DataError(f"{listing}: {len(missing)} listed images are not under {data_dir} (first: "
                        f"{missing[0]}); unpack SUN397.tar.gz there completely")
    return Selected(base, [where[n] for n in names], base.classes, [str(p) for p in base._image_files])


# ---- Caltech-101: 30 training images a class drawn with a fixed seed, the rest for test -----

CALTECH101_SEED = 0        # the draw of the 30 training images of each class (every run: the same split)
CALTECH101_TRAIN_PER_CLASS = 30
CALTECH101_CLASSES = 101   # BACKGROUND_Google excluded, as torchvision's class does


def _caltech101(root, split, transform, check_md5):
    folder = Path(root) / "caltech101" / "101_ObjectCategories"
    if not (folder / "BACKGROUND_Google").is_dir():
        raise DataError(f"--data_path {root}: {folder} has no BACKGROUND_Google/ folder: not the "
                        f"101_ObjectCategories of caltech-101.zip (101 classes + BACKGROUND_Google)")
    base = tvd.Caltech101(root, target_type="category", transform=transform, download=False)
    if len(base.categories) != CALTECH101_CLASSES:
        raise DataError(f"--data_path {root}: {folder} has {len(base.categories)} class folders besides "
                        f"BACKGROUND_Google, Caltech-101 has {CALTECH101_CLASSES}")
    labels = np.asarray(base.y)
    rng = np.random.default_rng(CALTECH101_SEED)
    chosen = []
    for k, name in enumerate(base.categories):
        members = np.flatnonzero(labels == k)
        if len(members) <= CALTECH101_TRAIN_PER_CLASS:
            raise DataError(f"--data_path {root}: {folder / name} has {len(members)} images, fewer than the "
                            f"{CALTECH101_TRAIN_PER_CLASS} training images a class + a test image")
        picked = rng.permutation(members)[:CALTECH101_TRAIN_PER_CLASS]
        chosen.append(np.sort(picked) if split == "train" else np.setdiff1d(members, picked))
    files = [str(folder / base.categories[y] / f"image_{i:04d}.jpg") for y, i in zip(base.y, base.index)]
    return Selected(base, np.concatenate(chosen).tolist(), base.categories, files)


# ---- VOC 2007 classification: multi-label targets from VOCDetection's annotations ------------

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]


def voc_labels(annotation: dict) -> torch.Tensor:
    """The classification target of one VOC annotation (torchvision's parsed xml):
    1 where a non-difficult object of the class is in the image, -1 (ignored)
    where all of its objects are difficult, 0 elsewhere."""
    target = torch.zeros(len(VOC_CLASSES))
    objects = annotation["annotation"].get("object", [])
    for obj in objects if isinstance(objects, list) else [objects]:
        name = obj.get("name")
        if name not in VOC_CLASSES:
            raise DataError(f"VOC annotation of {annotation['annotation'].get('filename')}: object "
                            f"{name!r} is not one of the 20 VOC classes")
        k = VOC_CLASSES.index(name)
        if str(obj.get("difficult", "0")) == "0":
            target[k] = 1
        elif target[k] == 0:
            target[k] = -1
    return target


class VOC2007Classification(tvd.VOCDetection):
    """torchvision's VOCDetection (2007) with the image-level multi-label target."""
    classes = VOC_CLASSES

    def __init__(self, root, image_set, transform=None):
        super().__init__(root, year="2007", image_set=image_set, download=False, transform=transform,
                         target_transform=voc_labels)
        self._image_files = self.images


def _voc2007(root, split, transform, check_md5):
    return VOC2007Classification(root, split, transform)


# ---- Birdsnap: images/<species>/<image> in ImageFolder layout + the published test list -----

def _birdsnap(root, split, transform, check_md5):
    folder = Path(root) / "birdsnap"
    base = SafeImageFolder(folder / "images", transform)
    lines = [line.strip() for line in (folder / "test_images.txt").read_text().splitlines() if line.strip()]
    listed = set(lines[1:] if lines and lines[0] == "path" else lines)  # the published file has a header
    rel = [Path(p).relative_to(folder / "images").as_posix() for p, _ in base.samples]
    keep = [i for i, r in enumerate(rel) if (r in listed) == (split == "test")]
    if split == "test" and not keep:
        raise DataError(f"--data_path {root}: none of the {len(listed)} images of {folder / 'test_images.txt'} "
                        f"is under {folder / 'images'} (paths there are <species>/<file>.jpg)")
    return Selected(base, keep, base.classes, [p for p, _ in base.samples])


DATASETS: Dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec("cifar10", _cifar(tvd.CIFAR10, CIFAR10PresenceChecked), ("train",), "test",
                tuple(f"cifar-10-batches-py/{f}" for f in
                      [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]),
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (unpacked)"),
    DatasetSpec("cifar100", _cifar(tvd.CIFAR100, CIFAR100PresenceChecked), ("train",), "test",
                ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
                "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (unpacked)"),
    DatasetSpec("flowers102", _split_kw(tvd.Flowers102, Flowers102PresenceChecked), ("train", "val"), "test",
                ("flowers-102/jpg/", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"),
                "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ (102flowers.tgz unpacked into <root>/flowers-102/, "
                "beside imagelabels.mat and setid.mat)"),
    DatasetSpec("pets", _split_kw(tvd.OxfordIIITPet, target_types="category"), ("trainval",), "test",
                ("oxford-iiit-pet/images/", "oxford-iiit-pet/annotations/trainval.txt",
                 "oxford-iiit-pet/annotations/test.txt"),
                "https://www.robots.ox.ac.uk/~vgg/data/pets/ (images.tar.gz and annotations.tar.gz unpacked "
                "into <root>/oxford-iiit-pet/)"),
    DatasetSpec("stl10", _split_kw(tvd.STL10, STL10PresenceChecked), ("train",), "test",
                # torchvision asks for the unlabeled part even to read the labelled ones
                tuple(f"stl10_binary/{f}" for f in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin",
                                                    "unlabeled_X.bin", "class_names.txt")),
                "https://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz (unpacked)"),
    DatasetSpec("food101", _split_kw(tvd.Food101), ("train",), "test",
                ("food-101/images/", "food-101/meta/train.json", "food-101/meta/test.json"),
                "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz (unpacked)"),
    DatasetSpec("dtd", _split_kw(tvd.DTD, partition=1), ("train", "val"), "test",
                ("dtd/dtd/images/", "dtd/dtd/labels/train1.txt", "dtd/dtd/labels/val1.txt",
                 "dtd/dtd/labels/test1.txt"),
                "https://www.robots.ox.ac.uk/~vgg/data/dtd/ (dtd-r1.0.1.tar.gz unpacked into <root>/dtd/)"),
    DatasetSpec("sun397", _sun397, ("train",), "test",
                ("SUN397/ClassName.txt", f"SUN397/Training_{SUN397_PARTITION:02d}.txt",
                 f"SUN397/Testing_{SUN397_PARTITION:02d}.txt"),
                "https://vision.princeton.edu/projects/2010/SUN/ (SUN397.tar.gz unpacked into <root>/SUN397/, "
                "and the Training_01.txt/Testing_01.txt of its Partitions.zip beside ClassName.txt)"),
    DatasetSpec("stanford_cars", _split_kw(tvd.StanfordCars), ("train",), "test",
                ("stanford_cars/devkit/cars_meta.mat", "stanford_cars/devkit/cars_train_annos.mat",
                 "stanford_cars/cars_test_annos_withlabels.mat", "stanford_cars/cars_train/",
                 "stanford_cars/cars_test/"),
                "the original ai.stanford.edu/~jkrause/cars/ archives (offline since 2023; copies such as "
                "Kaggle's 'stanford-cars-dataset' hold the same files): cars_train/, cars_test/, devkit/ and "
                "cars_test_annos_withlabels.mat under <root>/stanford_cars/"),
    DatasetSpec("fgvc_aircraft", _split_kw(tvd.FGVCAircraft, annotation_level="variant"), ("train", "val"), "test",
                ("fgvc-aircraft-2013b/data/images/", "fgvc-aircraft-2013b/data/variants.txt",
                 "fgvc-aircraft-2013b/data/images_variant_train.txt",
                 "fgvc-aircraft-2013b/data/images_variant_val.txt",
                 "fgvc-aircraft-2013b/data/images_variant_test.txt"),
                "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (fgvc-aircraft-2013b.tar.gz unpacked)"),
    DatasetSpec("caltech101", _caltech101, ("train",), "test",
                ("caltech101/101_ObjectCategories/",),
                "https://data.caltech.edu/records/mzrjq-6wc02 (caltech-101.zip: 101_ObjectCategories.tar.gz "
                "unpacked into <root>/caltech101/)"),
    DatasetSpec("voc2007", _voc2007, ("train", "val"), "test",
                tuple(f"VOCdevkit/VOC2007/{p}" for p in ("Annotations/", "JPEGImages/", "ImageSets/Main/train.txt",
                                                         "ImageSets/Main/val.txt", "ImageSets/Main/test.txt")),
                "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/ (VOCtrainval_06-Nov-2007.tar and "
                "VOCtest_06-Nov-2007.tar unpacked into <root>: both fill VOCdevkit/VOC2007/)",
                multilabel=True),
    DatasetSpec("birdsnap", _birdsnap, ("train",), "test",
                ("birdsnap/images/", "birdsnap/test_images.txt"),
                "https://thomasberg.org/ (Birdsnap: birdsnap.tgz's get_birdsnap.py downloads the images; put "
                "its images/<species>/ folders and test_images.txt under <root>/birdsnap/)"),
]}
CHOICES = tuple(DATASETS) + ("imagefolder",)
MD5_CHECKED = ("cifar10", "cifar100", "flowers102", "stl10")  # torchvision verifies these files' sums
MULTILABEL = tuple(name for name, spec in DATASETS.items() if spec.multilabel)


class NamedErrors(Dataset):
    """Wraps a torchvision dataset so an unreadable image names its file."""

    def __init__(self, base: Dataset, name: str):
        self.base, self.name = base, name

    @property
    def classes(self) -> List[str]:
        return list(self.base.classes)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        try:
            return self.base[index]
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:  # what PIL raises for bad files
            files = getattr(self.base, "_image_files", None) or getattr(self.base, "_images", None)
            where = f"image {files[index]}" if files is not None else f"sample {index}"
            raise DataError(f"{self.name}: corrupt or unreadable {where}: {exc}") from None


@dataclass
class TransferSplits:
    train: Dataset
    test: Dataset
    classes: List[str]
    description: str                        # "cifar100 at <root> (train / test)"
    # the official val split's positions in ``train`` (train + val datasets), else None
    val_indices: Optional[range] = None
    multilabel: bool = False


def _check_present(spec: DatasetSpec, root: Path) -> None:
    missing = [p for p in spec.expected if not ((root / p).is_dir() if p.endswith("/") else (root / p).is_file())]
    if missing:
        raise DataError(f"--data_path {root}: {spec.name} not found, missing {', '.join(missing)} (the layout "
                        f"torchvision.datasets reads; get {spec.source}; this suite never downloads)")


def _construct(spec: DatasetSpec, root: Path, split: str, transform, check_md5: bool) -> Dataset:
    try:
        return spec.make(str(root), split, transform, check_md5)
    except DataError:
        raise
    # torchvision reading the dataset's own files (pickles, .mat, .bin, json and text lists): every
    # way a damaged or foreign file fails there is a data error, reported with what it said.
    except Exception as exc:
        said = (str(exc).strip().splitlines() or [""])[0]
        if isinstance(exc, RuntimeError) and "corrupted" in said and check_md5 and spec.name in MD5_CHECKED:
            raise DataError(f"--data_path {root}: torchvision rejects the {spec.name} files ({said}); "
                            "they are all present, so their md5 sums differ from the official archive's: "
                            "pass --check_md5 false to load a re-packed copy") from None
        raise DataError(f"--data_path {root}: torchvision cannot read {spec.name} split {split!r} "
                        f"({type(exc).__name__}: {said}); expected intact {', '.join(spec.expected)} "
                        f"from {spec.source}") from None


def build_splits(name: str, root, train_transform, test_transform, *, check_md5: bool = True) -> TransferSplits:
    """Training and official test split of dataset ``name`` at ``root``."""
    root = Path(root)
    if name == "imagefolder":
        classes = check_image_folder(root / "train")
        test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
        if test_dir is None:
            raise DataError(f"--data_path {root}: no test/ (or val/) folder beside train/ "
                            f"(expected {root}/test/<class>/<image>)")
        check_image_folder(test_dir)
        train, test = SafeImageFolder(root / "train", train_transform), SafeImageFolder(test_dir, test_transform)
        if train.classes != test.classes:
            extra = sorted(set(train.classes) ^ set(test.classes))
            raise DataError(f"--data_path {root}: train/ and {test_dir.name}/ have different class folders "
                            f"(only in one of them: {', '.join(extra[:10])})")
        return TransferSplits(train, test, classes, f"imagefolder at {root} (train / {test_dir.name})")
    if name not in DATASETS:
        raise DataError(f"--dataset {name!r}: choose one of {', '.join(CHOICES)}")
    spec = DATASETS[name]
    if not root.is_dir():
        raise DataError(f"--data_path {root}: no such directory (for {name}: {root}/{spec.expected[0]}, ...; "
                        f"get {spec.source})")
    _check_present(spec, root)
    parts = []
    for split in spec.train_splits + (spec.test_split,):
        transform = test_transform if split == spec.test_split else train_transform
        parts.append(NamedErrors(_construct(spec, root, split, transform, check_md5), name))
        check_md5 = False  # torchvision's first construction verified every file of the dataset
    *parts, test = parts
    classes = parts[0].classes
    for split, part in zip(spec.train_splits[1:] + (spec.test_split,), parts[1:] + [test]):
        if part.classes != classes:
            raise DataError(f"--data_path {root}: {name} split {split!r} lists other classes than "
                            f"{spec.train_splits[0]!r} ({len(part.classes)} vs {len(classes)})")
    train = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    described = " + ".join(spec.train_splits)
    val = None
    if spec.train_splits[-1] == "val":
        val = range(len(train) - len(parts[-1]), len(train))
    return TransferSplits(train, test, classes, f"{name} at {root} ({described} / {spec.test_split})", val,
                          spec.multilabel)

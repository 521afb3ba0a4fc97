"""Transfer datasets through torchvision's own classes, read from a local root and
never downloaded.

=============  ==========================  =================  ==========
``--dataset``  torchvision class           trained on         tested on
=============  ==========================  =================  ==========
cifar10        CIFAR10                     train (50,000)     test
cifar100       CIFAR100                    train (50,000)     test
flowers102     Flowers102                  train + val        test
pets           OxfordIIITPet (category)    trainval           test
stl10          STL10                       train (5,000)      test
food101        Food101                     train              test
dtd            DTD (partition 1)           train + val        test
imagefolder    ImageFolder                 <root>/train       <root>/test (or val)
=============  ==========================  =================  ==========

Flowers-102 and DTD train on train + val, the usual protocol for these two
small sets once hyperparameters are fixed. The official test split is always
the one reported.

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
from typing import Callable, Dict, List, Tuple

import torchvision.datasets as tvd
from PIL import UnidentifiedImageError
from torch.utils.data import ConcatDataset, Dataset

from training.data import DataError, SafeImageFolder, check_image_folder

__all__ = ["DATASETS", "DatasetSpec", "TransferSplits", "build_splits"]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    make: Callable[..., Dataset]            # make(root, split, transform, check_md5) -> torchvision dataset
    train_splits: Tuple[str, ...]
    test_split: str
    expected: Tuple[str, ...]              # paths under root that torchvision reads (folders end in /)
    source: str                            # where to get it


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
]}
CHOICES = tuple(DATASETS) + ("imagefolder",)
MD5_CHECKED = ("cifar10", "cifar100", "flowers102", "stl10")  # torchvision verifies these files' sums


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


def _check_present(spec: DatasetSpec, root: Path) -> None:
    missing = [p for p in spec.expected if not ((root / p).is_dir() if p.endswith("/") else (root / p).is_file())]
    if missing:
        raise DataError(f"--data_path {root}: {spec.name} not found, missing {', '.join(missing)} (the layout "
                        f"torchvision.datasets reads; get {spec.source}; this suite never downloads)")


def _construct(spec: DatasetSpec, root: Path, split: str, transform, check_md5: bool) -> Dataset:
    try:
        return spec.make(str(root), split, transform, check_md5)
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
    return TransferSplits(train, test, classes, f"{name} at {root} ({described} / {spec.test_split})")

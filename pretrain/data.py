"""ImageNet-style folders, timm's augmentations, and a sampler that makes every
sample's augmentation a function of (seed, epoch, position) alone.

That last property is what lets a run killed mid-epoch resume to bit-identical
weights: the resumed loader skips the samples already seen without replaying
their random draws, whatever the number of workers.
"""
from __future__ import annotations

import contextlib
import math
import random
from pathlib import Path
from typing import Iterator, List, Tuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

__all__ = ["DataError", "check_image_folder", "SafeImageFolder", "SeededDataset", "EpochSampler",
           "isolated_rng"]


class DataError(Exception):
    """Bad input data: the message names the path and what was expected."""


def check_image_folder(split_dir: Path, flag: str = "--data_path") -> List[str]:
    """Classes of an ImageNet-style split folder, or a DataError naming what is wrong."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(f"{flag}: no directory {split_dir} (expected <data_path>/{split_dir.name}/"
                        "<class>/<image> as in ImageNet's layout)")
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"{flag}: {split_dir} has no class folders (expected {split_dir}/<class>/<image>)")
    for c in classes:
        if not any(p.suffix.lower() in IMG_EXTENSIONS for p in (split_dir / c).rglob("*") if p.is_file()):
            raise DataError(f"{flag}: class folder {split_dir / c} has no images "
                            f"(extensions {', '.join(IMG_EXTENSIONS)})")
    return classes


def _load_rgb(path: str) -> Image.Image:
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"corrupt or unreadable image {path}: {exc}") from None


class SafeImageFolder(ImageFolder):
    """torchvision's ImageFolder whose loader names the file it could not read."""

    def __init__(self, root: Path, transform=None, flag: str = "--data_path"):
        check_image_folder(Path(root), flag)
        super().__init__(str(root), transform=transform, loader=_load_rgb)


@contextlib.contextmanager
def isolated_rng(seed: int):
    """Seed python, numpy and torch (CPU) for a block, then restore their states,
    so that data loading in the main process never disturbs the training RNG."""
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


class SeededDataset(Dataset):
    """Indexed by ``(index, seed)`` pairs from ``EpochSampler``: the transform of a
    sample runs under its own seed."""

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: Tuple[int, int]):
        index, seed = key
        with isolated_rng(seed):
            return self.base[index]


class EpochSampler(Sampler):
    """Shuffles with a permutation fixed by (seed, epoch), shards it over ranks and
    yields ``(index, per-sample seed)``. ``start`` skips the first samples of this
    rank's shard (mid-epoch resume). Training drops the tail that does not fill
    every rank; evaluation (``shuffle=False``) shards without padding or dropping."""

    def __init__(self, size: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _order(self) -> List[int]:
        if not self.shuffle:
            return list(range(self.size))[self.rank::self.world_size]
        g = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        perm = torch.randperm(self.size, generator=g).tolist()
        per_rank = self.size // self.world_size
        return perm[self.rank * per_rank:(self.rank + 1) * per_rank]

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        base = (self.seed * 7919 + self.epoch) * 1000003 + self.rank
        for pos, index in enumerate(self._order()):
            if pos >= self.start:
                yield index, (base * 1000033 + pos) % (2 ** 63)

    def __len__(self) -> int:
        n = math.ceil((self.size - self.rank) / self.world_size) if not self.shuffle \
            else self.size // self.world_size
        return max(0, n - self.start)


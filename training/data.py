"""Image folders, timm's transforms, loaders, and a sampler that makes every
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
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from PIL import Image, UnidentifiedImageError
from timm.data import create_transform
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from backbones.checkpoint import normalization_from_meta, normalization_of_file, set_model_normalization
from backbones.errors import UserError

from . import distributed as D
from .state import latest_checkpoint

__all__ = ["DataError", "check_image_folder", "SafeImageFolder", "SeededDataset", "EpochSampler",
           "isolated_rng", "starting_weights", "build_transforms", "make_loaders", "release_workers"]


class DataError(UserError):
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
    """Seed python, numpy and torch's CPU generator for a block. In the main process
    their states are restored afterwards, so data loading never disturbs the training
    RNG; a DataLoader worker draws from them for nothing else, so it skips the save and
    restore (a quarter of the seeding's cost). Only the CPU generator is seeded:
    ``torch.manual_seed`` would also reseed (and leave reseeded) the CUDA generators."""
    restore = get_worker_info() is None
    if restore:
        py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        if restore:
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



def starting_weights(args) -> Optional[Path]:
    """The file a run's weights come from: ``--finetune``, else the checkpoint it
    resumes (None: from scratch, or a path that does not exist, reported later by
    the code that loads it)."""
    if getattr(args, "finetune", ""):
        path = Path(args.finetune)
    elif getattr(args, "resume", "") == "auto":
        path = latest_checkpoint(Path(args.output_dir))
    else:
        path = Path(args.resume) if getattr(args, "resume", "") else None
    return path if path is not None and path.is_file() else None


def build_transforms(args, model: nn.Module):
    """(train, eval) transforms of timm for the flags' augmentation, normalised as
    the starting weights were trained (their meta; the paper's ImageNet mean/std
    for the paper's release and from scratch, whatever timm's default for the
    architecture). The normalisation is recorded on ``model`` (its timm
    ``pretrained_cfg``), from where exports and checkpoints record it."""
    source = starting_weights(args)
    norm = normalization_of_file(source) if source is not None else normalization_from_meta({})
    set_model_normalization(model, norm)
    mean, std, interpolation = norm["mean"], norm["std"], norm["interpolation"]
    train_tf = create_transform(
        args.input_size, is_training=True, auto_augment=None if args.aa == "none" else args.aa,
        re_prob=args.reprob, re_mode="pixel", re_count=1, interpolation=interpolation,
        scale=tuple(args.scale), color_jitter=args.color_jitter, mean=mean, std=std)
    val_tf = create_transform(args.input_size, is_training=False, interpolation=interpolation,
                              crop_pct=args.crop_pct, mean=mean, std=std)
    return train_tf, val_tf


def make_loaders(args, train: Dataset, val: Dataset):
    """(train loader, its sampler, val loader): per-sample seeded augmentation
    (exact resume), sharded over the processes. Their workers start once and
    live until ``release_workers`` (or the loaders' end), as with timm's
    loaders: an epoch or an evaluation starts no processes. Exactness does not
    depend on it: the main process iterates the sampler anew at every epoch
    (``set_epoch`` takes effect), and every sample's augmentation is seeded by
    its position, not by a worker's RNG."""
    world, rank = D.world_size(), D.rank()
    train_sampler = EpochSampler(len(train), shuffle=True, seed=args.seed, rank=rank, world_size=world)
    val_sampler = EpochSampler(len(val), shuffle=False, seed=args.seed, rank=rank, world_size=world)
    common = dict(num_workers=args.num_workers, pin_memory=torch.cuda.is_available(),
                  persistent_workers=args.num_workers > 0,
                  # Own generator: creating an iterator must not draw from the global RNG.
                  generator=torch.Generator())
    train_loader = DataLoader(SeededDataset(train), batch_size=args.batch_size, sampler=train_sampler,
                              drop_last=True, **common)
    val_loader = DataLoader(SeededDataset(val), batch_size=args.batch_size, sampler=val_sampler, **common)
    return train_loader, train_sampler, val_loader


def release_workers(*loaders) -> None:
    """End the persistent workers of ``loaders`` now: a run in a long-lived
    process (a notebook, the tests) would otherwise keep them until the loaders
    are garbage-collected. DataLoader has no public close; dropping its live
    iterator is what its own ``__del__`` path does."""
    for loader in loaders:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None:
            loader._iterator = None
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()

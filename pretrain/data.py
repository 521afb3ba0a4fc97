"""ImageNet-style folders for pretraining: the train/val loaders and the fixed,
augmentation-free images of the gradient diagnostics (compared mini-batches and
a disjoint reference set)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

from training.config import ConfigError
from training.data import DataError, SafeImageFolder, build_transforms, make_loaders

__all__ = ["build_loaders", "diagnostic_split", "diagnostic_batches"]


def build_loaders(args, model: nn.Module):
    root = Path(args.data_path)
    train_tf, val_tf = build_transforms(args, model)
    train = SafeImageFolder(root / "train", train_tf)
    val = SafeImageFolder(root / "val", val_tf)
    if train.classes != val.classes:
        extra = sorted(set(train.classes) ^ set(val.classes))
        raise DataError(f"--data_path {root}: train/ and val/ have different class folders "
                        f"(only in one of them: {', '.join(extra[:10])})")
    train_loader, train_sampler, val_loader = make_loaders(args, train, val)
    return train, train_loader, train_sampler, val_loader, val_tf


# Reference sets up to this many images are decoded once and kept in memory;
# larger ones (up to the whole split) are streamed at every measurement.
CACHED_REFERENCE_IMAGES = 2048


def diagnostic_split(num_images: int, compared: int, reference: int, seed: int) -> Tuple[List[int], List[int]]:
    """Training-set indices of the diagnostics: the ``compared`` images whose
    mini-batch gradients GDV/GDE compare (the start of a permutation fixed by
    ``seed``) and, disjoint from them, the ``reference`` images of the
    whole-dataset gradient (the next ones; 0: every other image)."""
    perm = torch.randperm(num_images, generator=torch.Generator().manual_seed(seed)).tolist()
    rest = perm[compared:]
    return perm[:compared], (rest if reference == 0 else rest[:reference])


def diagnostic_batches(args, eval_tf):
    """(the ``--diag_batches`` mini-batches compared for GDV/GDE, the batches of the
    whole-dataset gradient): training images without augmentation, fixed by
    ``--seed``. The reference set (``--diag_samples`` images, 0: all the others)
    never contains a compared image: a mini-batch inside its own reference would
    pull GDE down by an amount that depends on the drop rate."""
    data = SafeImageFolder(Path(args.data_path) / "train", eval_tf)
    compared = args.diag_batches * args.batch_size
    left = len(data) - compared
    if left <= 0:
        raise ConfigError(f"--diag_batches {args.diag_batches} x --batch_size {args.batch_size} = {compared} "
                          f"compared images, but --data_path {args.data_path} has only {len(data)} training "
                          "images: the whole-dataset gradient needs images of its own")
    if args.diag_samples > left:
        raise ConfigError(f"--diag_samples {args.diag_samples}: only {left} training images are left once the "
                          f"{compared} compared ones (--diag_batches {args.diag_batches} x --batch_size "
                          f"{args.batch_size}) are set aside; ask at most {left}, or 0 for all of them")
    compared_idx, reference_idx = diagnostic_split(len(data), compared, args.diag_samples, args.seed)

    def loader(indices):  # its own generator: iterating leaves the global RNG alone
        return DataLoader(Subset(data, indices), batch_size=args.batch_size, num_workers=args.num_workers,
                          generator=torch.Generator())

    reference = loader(reference_idx)
    return list(loader(compared_idx)), (list(reference) if len(reference_idx) <= CACHED_REFERENCE_IMAGES
                                         else reference)

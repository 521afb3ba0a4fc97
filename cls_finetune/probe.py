"""Linear probe on cached features (``--probe_features cached``): the frozen
backbone's features are computed once per image, without augmentation and in
eval mode (the fixed-feature protocol of Kornblith et al., 2019), and the linear
head is then trained on those tensors with the same optimizer, schedules,
sampler and run records as the per-step probe. A per-step probe runs the
backbone on every augmented batch of every epoch instead.

Either way the head is, by default (``--probe_bn``), MAE's linear-probe head
(facebookresearch/mae ``main_linprobe.py``): a BatchNorm without affine
parameters (eps 1e-6) that normalises the frozen features, then the linear layer.
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from training.data import EpochSampler

__all__ = ["extract_features", "FeatureBatches", "add_feature_norm"]


def add_feature_norm(model: nn.Module) -> None:
    """Put a BatchNorm1d without affine (eps 1e-6, as MAE) in front of the model's
    classifier, in the classifier's place, so that ``get_classifier()`` (what a
    cached-feature probe trains) includes it."""
    head = model.get_classifier()
    parent_name, _, attr = next(n for n, m in model.named_modules() if m is head).rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, nn.Sequential(nn.BatchNorm1d(head.in_features, affine=False, eps=1e-6), head))


@torch.no_grad()
def extract_features(model: nn.Module, dataset, batch_size: int, num_workers: int, device: torch.device,
                     amp_dtype: Optional[torch.dtype] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(features, labels) of every image of ``dataset`` in order: what the
    classifier of ``model`` receives (timm's pre-logits), in eval mode."""
    was_training = model.training
    model.eval()
    feats, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, generator=torch.Generator())
    for samples, targets in loader:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            f = model.forward_head(model.forward_features(samples.to(device)), pre_logits=True)
        feats.append(f.float())
        labels.append(targets.to(device))
    model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


class FeatureBatches:
    """Mini-batches of cached features in the order of an ``EpochSampler`` (so
    shuffling, sharding and mid-epoch resume are the per-step probe's), gathered
    from the tensors directly: no per-sample Dataset calls, no workers."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, sampler: EpochSampler,
                 batch_size: int, drop_last: bool):
        self.features, self.labels, self.sampler = features, labels, sampler
        self.batch_size, self.drop_last = batch_size, drop_last

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        order = torch.tensor([index for index, _ in self.sampler], dtype=torch.long, device=self.features.device)
        stop = len(order) - (len(order) % self.batch_size if self.drop_last else 0)
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.features[idx], self.labels[idx]

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

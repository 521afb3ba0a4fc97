"""Per-iteration cosine schedule with linear warmup, answered in O(1) like the drop schedule."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warmup from ``warmup_start`` to ``base`` over ``warmup_iters``, then a
    cosine from ``base`` to ``final`` over the remaining iterations."""

    base: float
    final: float
    total_iters: int
    warmup_iters: int = 0
    warmup_start: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup_iters > self.total_iters:
            raise ValueError(f"warmup ({self.warmup_iters} iterations) is longer than training "
                             f"({self.total_iters} iterations)")

    def __call__(self, iteration: int) -> float:
        i = min(max(int(iteration), 0), self.total_iters - 1)
        if i < self.warmup_iters:
            return self.warmup_start + (self.base - self.warmup_start) * i / self.warmup_iters
        span = self.total_iters - self.warmup_iters
        t = (i - self.warmup_iters) / span if span > 0 else 0.0
        return self.final + 0.5 * (self.base - self.final) * (1 + math.cos(math.pi * t))

"""Drop-rate schedules: the one idea this suite is about.

A schedule answers "what is the dropout (or stochastic-depth) rate at training
iteration ``i``?" in O(1), without materialising a per-iteration array. The
same object drives ImageNet pretraining, the mmdet/mmseg fine-tuning hook and
classification transfer.

Modes and shapes (``p`` is the rate, ``n = round(cutoff_epoch * iters_per_epoch)``,
``T = epochs * iters_per_epoch``):

=========  ===========  =====================================================
mode       shape        rate at iteration ``i``
=========  ===========  =====================================================
standard   constant     ``p`` everywhere
standard   curriculum   rises from 0 to ``p`` over training, end points
                        included (``numpy.linspace(0, p, T)[i]``)
early      constant     ``p`` for ``i < n``, then 0
early      linear       ``numpy.linspace(p, 0, n)[i]`` for ``i < n``, then 0
early      cosine       ``p * (1 + cos(pi * i / (n - 1))) / 2`` for ``i < n``
                        (``p`` down to 0, end points included), then 0
late       constant     0 for ``i < n``, then ``p``
=========  ===========  =====================================================

``early`` with ``n = T`` is the standard schedule; ``late`` with ``n = 0`` is too.
Iterations at or past ``T`` keep the last value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Tuple

__all__ = ["DropSchedule", "DropPlan", "DROP_MODES", "DROP_SHAPES"]


def _constant(t: float) -> float:
    return 1.0


def _linear_down(t: float) -> float:
    return 1.0 - t


def _cosine_down(t: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * t))


def _linear_up(t: float) -> float:
    return t


# Shape -> factor in [0, 1] as a function of progress t in [0, 1] through the
# window where the shape applies.
DROP_SHAPES: Dict[str, Callable[[float], float]] = {
    "constant": _constant,
    "linear": _linear_down,
    "cosine": _cosine_down,
    "curriculum": _linear_up,
}

# Which shapes each mode accepts (the paper's early/late plus its ablations).
DROP_MODES: Dict[str, Tuple[str, ...]] = {
    "standard": ("constant", "curriculum"),
    "early": ("constant", "linear", "cosine"),
    "late": ("constant",),
}


def _check_rate(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:  # also rejects NaN
        raise ValueError(f"{name}={value} is outside [0, 1): a drop rate of 1 would drop everything")
    return value


@dataclass(frozen=True)
class DropSchedule:
    """Rate of one kind of drop (dropout or stochastic depth) per iteration."""

    rate: float
    epochs: float
    iters_per_epoch: int
    mode: str = "standard"
    shape: str = "constant"
    cutoff_epoch: float = 0.0
    name: str = "rate"  # used in error messages, e.g. "dropout" or "drop_path"
    total_iters: int = field(init=False)
    cutoff_iters: int = field(init=False)

    def __post_init__(self) -> None:
        _check_rate(self.name, self.rate)
        if self.mode not in DROP_MODES:
            raise ValueError(f"drop_mode={self.mode!r} is unknown; choose one of {sorted(DROP_MODES)}")
        if self.shape not in DROP_MODES[self.mode]:
            raise ValueError(
                f"drop_schedule={self.shape!r} does not go with drop_mode={self.mode!r}; "
                f"{self.mode} accepts {list(DROP_MODES[self.mode])}")
        if not self.epochs > 0:
            raise ValueError(f"epochs={self.epochs} must be positive")
        if int(self.iters_per_epoch) != self.iters_per_epoch or self.iters_per_epoch < 1:
            raise ValueError(f"iters_per_epoch={self.iters_per_epoch} must be a positive integer")
        total = int(round(self.epochs * self.iters_per_epoch))
        if total < 1:
            raise ValueError(f"epochs={self.epochs} x iters_per_epoch={self.iters_per_epoch} "
                             "gives no training iteration")
        # Checked in every mode (standard ignores it) so that a typo never passes silently.
        if not self.cutoff_epoch >= 0:
            raise ValueError(f"cutoff_epoch={self.cutoff_epoch} is negative")
        if self.cutoff_epoch > self.epochs:
            raise ValueError(f"cutoff_epoch={self.cutoff_epoch} is past the end of training "
                             f"(epochs={self.epochs})")
        cutoff = int(round(self.cutoff_epoch * self.iters_per_epoch))
        object.__setattr__(self, "total_iters", total)
        object.__setattr__(self, "cutoff_iters", cutoff)

    @property
    def peak(self) -> float:
        """The largest rate this schedule ever asks for (0 if it never drops)."""
        if self.mode == "early" and self.cutoff_iters == 0:
            return 0.0
        if self.mode == "late" and self.cutoff_iters >= self.total_iters:
            return 0.0
        return self.rate

    def __call__(self, iteration: int) -> float:
        if iteration < 0:
            raise ValueError(f"iteration={iteration} is negative")
        p = self.rate
        if p == 0.0:
            return 0.0
        i = min(int(iteration), self.total_iters - 1)
        n = self.cutoff_iters
        shape = DROP_SHAPES[self.shape]
        if self.mode == "standard":
            t = i / (self.total_iters - 1) if self.total_iters > 1 else 0.0
            return p * shape(t)
        if self.mode == "early":
            if i >= n:
                return 0.0
            t = i / (n - 1) if n > 1 else 0.0
            return p * shape(t)
        # late
        return p if i >= n else 0.0


@dataclass(frozen=True)
class DropPlan:
    """Dropout and stochastic-depth schedules of one run (at most one is non-zero,
    as in the paper). ``plan(i)`` returns ``(dropout, drop_path)`` at iteration ``i``."""

    dropout: DropSchedule
    drop_path: DropSchedule

    @classmethod
    def build(cls, *, dropout: float = 0.0, drop_path: float = 0.0, drop_mode: str = "standard",
              drop_schedule: str = "constant", cutoff_epoch: float = 0.0, epochs: float,
              iters_per_epoch: int) -> "DropPlan":
        dropout = _check_rate("dropout", dropout)
        drop_path = _check_rate("drop_path", drop_path)
        if dropout > 0 and drop_path > 0:
            raise ValueError(f"dropout={dropout} and drop_path={drop_path} are both non-zero; "
                             "use one of them (the paper never combines them)")
        common = dict(epochs=epochs, iters_per_epoch=iters_per_epoch, mode=drop_mode,
                      shape=drop_schedule, cutoff_epoch=cutoff_epoch)
        return cls(DropSchedule(dropout, name="dropout", **common),
                   DropSchedule(drop_path, name="drop_path", **common))

    # The flags of a training run that define its plan (``--dropout`` ... ``--epochs``).
    FLAGS = ("dropout", "drop_path", "drop_mode", "drop_schedule", "cutoff_epoch", "epochs")

    @classmethod
    def from_flags(cls, flags: Mapping, iters_per_epoch: int) -> "DropPlan":
        """The plan of a run from its flags (parsed args as a dict, or a checkpoint's
        ``args``); a missing flag is a ``KeyError`` naming it."""
        return cls.build(**{k: flags[k] for k in cls.FLAGS}, iters_per_epoch=iters_per_epoch)

    def __call__(self, iteration: int) -> Tuple[float, float]:
        return self.dropout(iteration), self.drop_path(iteration)

    @property
    def mode(self) -> str:
        return self.dropout.mode

    @property
    def shape(self) -> str:
        return self.dropout.shape

    @property
    def cutoff_epoch(self) -> float:
        return self.dropout.cutoff_epoch

    @property
    def changes_every_update(self) -> bool:
        """A non-zero rate on a linear/cosine/... shape (a constant shape changes at most once, at the cutoff)."""
        return self.shape != "constant" and max(self.dropout.rate, self.drop_path.rate) > 0

    def describe(self) -> str:
        """Short human-readable name, e.g. 'early-linear dropout 0.1 until epoch 50'."""
        kind, p = ("dropout", self.dropout.rate) if self.dropout.rate > 0 else (
            "drop_path", self.drop_path.rate)
        if p == 0:
            return "no dropout"
        text = f"{self.mode}-{self.shape} {kind} {p:g}"
        if self.mode == "early":
            text += f" until epoch {self.cutoff_epoch:g}"
        elif self.mode == "late":
            text += f" from epoch {self.cutoff_epoch:g}"
        return text

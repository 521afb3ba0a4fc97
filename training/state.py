"""Training checkpoints: atomic writes, every RNG stream, exact mid-epoch resume.

A checkpoint (``checkpoint-last.pth`` / ``checkpoint-best.pth``) holds

* ``model``, ``optimizer``, ``scaler``, ``ema`` state dicts,
* ``next_step`` (the global number of the next optimizer update),
  ``iters_per_epoch`` (a resumed run must have the same), and for reading
  convenience ``epoch`` / ``step_in_epoch`` derived from them,
* ``rng``: python, numpy and torch (CPU and CUDA) states of every rank,
* ``args``, ``kind`` (``pretrain`` / ``cls_finetune``), ``best_top1`` and
  ``evaluated_epochs`` (the epochs it is the best of: ``--eval_every``);
  ``backbones.checkpoint`` reads the pretraining method back from ``args``.

Only tensors and plain Python values are stored, so it loads with
``weights_only=True``.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist

from backbones.checkpoint import CheckpointError, read_checkpoint
from common.files import atomic_write
from common.names import CHECKPOINT_LAST

from . import distributed as D


def atomic_save(obj, path: Path) -> None:
    """torch.save, atomically (checkpoints and exported weights)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_duplicate(src: Path, dst: Path) -> None:
    """``dst`` becomes the file ``src`` just written, without serializing it again
    (as timm's ``CheckpointSaver`` makes its best checkpoint): a hard link, or a
    copy where the filesystem has none; atomically. Safe because run files are
    only ever replaced (``os.replace``), never rewritten in place: replacing
    ``src`` later leaves ``dst`` with the old content."""
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.link{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # no hard links here (some network and FUSE filesystems)
        with open(src, "rb") as source:
            atomic_write(dst, lambda f: shutil.copyfileobj(source, f))
        return
    os.replace(tmp, dst)


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuple(state["python"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def _tensors_as_bytes(obj, back: bool = False):
    """all_gather_object cannot carry tensors here (torch 2.14 + gloo fails to
    unpickle their storages), so RNG tensors travel as bytes."""
    if back and isinstance(obj, tuple) and len(obj) == 3 and obj[0] == "__tensor__":
        return torch.frombuffer(bytearray(obj[2]), dtype=getattr(torch, obj[1].split(".")[1])).clone()
    if not back and isinstance(obj, torch.Tensor):
        return ("__tensor__", str(obj.dtype), obj.cpu().numpy().tobytes())
    if isinstance(obj, dict):
        return {k: _tensors_as_bytes(v, back) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tensors_as_bytes(v, back) for v in obj)
    return obj


def gather_rng_states() -> list:
    """RNG states of all ranks, in rank order (dropout masks differ per rank)."""
    local = rng_state()
    if not dist.is_initialized():
        return [local]
    out = [None] * D.world_size()
    dist.all_gather_object(out, _tensors_as_bytes(local))
    return [_tensors_as_bytes(o, back=True) for o in out]


def latest_checkpoint(output_dir: Path) -> Optional[Path]:
    last = Path(output_dir) / CHECKPOINT_LAST
    return last if last.is_file() else None


def load_training_checkpoint(path: Path) -> dict:
    ckpt = read_checkpoint(path)
    missing = [k for k in ("model", "optimizer", "epoch", "step_in_epoch", "rng", "args") if k not in ckpt]
    if missing:
        raise CheckpointError(f"--resume {path}: not a training checkpoint of this suite "
                              f"(missing {', '.join(missing)}); use --finetune for weights only")
    return ckpt

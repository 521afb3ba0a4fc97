"""Checkpoint reading, conversion and provenance: one code path for the whole suite.

Formats read:

* **this suite's export** (``tools/pretrain.sh`` writes ``weights.pth`` /
  ``weights_ema.pth``): ``{"model": <timm state dict>, "meta": {...}}`` where
  ``meta`` records the architecture and the pretraining method
  (``arch``, ``timm_name``, ``dropout``, ``drop_path``, ``drop_mode``,
  ``drop_schedule``, ``cutoff_epoch``, ``epochs``, ``ema``, ``top1``, ...);
* **the paper's released checkpoints**: the state dict under ``model``, in each
  architecture's original key layout (ConvNeXt's and Swin's differ from timm's;
  converted here with timm's own filters);
* a training checkpoint of this suite (``checkpoint-*.pth``, same ``model`` key)
  or a bare state dict. A ``module.`` prefix (DDP) is stripped.

Everything loads with ``torch.load(weights_only=True)``: no pickled code runs.

Input normalisation travels with the weights: an export's ``meta`` (and a
training checkpoint's ``normalization``) records the ``mean``, ``std`` and
``interpolation`` the weights were trained with, and every consumer (``--eval``,
classification transfer, ``TimmDropBackbone``) takes it from
``normalization_from_meta``. A file without meta (the paper's release) gets the
paper's: ImageNet's mean/std for every model, bicubic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from common.errors import UserError
from common.files import file_sha256

from .models import PAPER_MODELS, same_architecture

__all__ = ["CheckpointError", "read_checkpoint", "split_checkpoint", "run_meta", "to_timm_layout",
           "load_pretrained", "file_sha256", "provenance", "LoadReport", "EXPORT_FORMAT", "PAPER_NORMALIZATION",
           "normalization_from_meta", "normalization_of_file", "model_normalization", "set_model_normalization"]

EXPORT_FORMAT = "dropout-transfer/weights-v1"

# The paper's input pipeline (its datasets.py, imagenet_default_mean_and_std=True):
# ImageNet's mean/std for every model (timm's own default for vit_*/mixer_* is 0.5),
# bicubic resizing.
PAPER_NORMALIZATION = {"mean": [float(v) for v in IMAGENET_DEFAULT_MEAN],
                       "std": [float(v) for v in IMAGENET_DEFAULT_STD], "interpolation": "bicubic"}
NORMALIZATION_KEYS = tuple(PAPER_NORMALIZATION)


class CheckpointError(UserError):
    """A checkpoint that cannot be used: the message names the file and the keys."""


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle with code, wrong file type...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated, corrupt or not a "
                              f"torch checkpoint): {first}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict of tensors")
    return obj


def run_meta(args: dict, method: str) -> dict:
    """What weights record of the run that trained them: architecture and drop
    method. Part of an export's ``meta``, and read back from a training
    checkpoint's ``args``, so fine-tuning from ``checkpoint-best.pth`` records it too."""
    keys = ("input_size", "crop_pct", "model_kwargs", "dropout", "drop_path", "drop_mode", "drop_schedule",
            "cutoff_epoch", "epochs", "seed")
    return {"arch": args.get("model"), **{k: args.get(k) for k in keys}, "method": method}


def normalization_from_meta(meta: dict) -> dict:
    """``{mean, std, interpolation}`` the weights with this ``meta`` were trained with
    (mean/std in [0, 1] units, RGB): the one rule every consumer uses.

    * recorded in the meta (exports and training checkpoints of this suite): that;
    * no meta at all (the paper's release, a bare state dict): the paper's;
    * a meta without it (written before the suite recorded normalisation, when it
      took timm's default config of the architecture): that default.
    """
    if meta.get("mean") is not None and meta.get("std") is not None:
        return {"mean": [float(v) for v in meta["mean"]], "std": [float(v) for v in meta["std"]],
                "interpolation": meta.get("interpolation") or PAPER_NORMALIZATION["interpolation"]}
    if not meta:
        return {"mean": list(PAPER_NORMALIZATION["mean"]), "std": list(PAPER_NORMALIZATION["std"]),
                "interpolation": PAPER_NORMALIZATION["interpolation"]}
    from timm.models import get_pretrained_cfg
    arch = meta.get("arch")
    cfg = get_pretrained_cfg(PAPER_MODELS.get(arch, arch)) if arch else None
    if cfg is None:
        return normalization_from_meta({})
    return {"mean": [float(v) for v in cfg.mean], "std": [float(v) for v in cfg.std],
            "interpolation": cfg.interpolation or PAPER_NORMALIZATION["interpolation"]}


def normalization_of_file(path) -> dict:
    """``normalization_from_meta`` of a checkpoint file."""
    path = Path(path)
    return normalization_from_meta(split_checkpoint(read_checkpoint(path), path)[1])


def set_model_normalization(model: nn.Module, norm: dict) -> None:
    """Record the normalisation a model is trained with in its timm ``pretrained_cfg``
    (where timm's ``resolve_data_config`` looks); exports and checkpoints copy it from there."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg.update({k: norm[k] for k in NORMALIZATION_KEYS})
    model.pretrained_cfg = model.default_cfg = cfg


def model_normalization(model: nn.Module) -> dict:
    """``{mean, std, interpolation}`` of the model's timm ``pretrained_cfg`` (what
    ``set_model_normalization`` put there; {} for a model without one)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("mean") is None:
        return {}
    return {"mean": [float(v) for v in cfg["mean"]], "std": [float(v) for v in cfg["std"]],
            "interpolation": cfg.get("interpolation") or PAPER_NORMALIZATION["interpolation"]}


def _training_checkpoint_meta(obj: dict) -> dict:
    from .drop_schedule import DropPlan
    args = obj["args"]
    try:
        method = DropPlan.from_flags(args, obj["iters_per_epoch"]).describe()
    except (KeyError, TypeError, ValueError):  # args of another program: record what is there
        method = "unknown (training checkpoint without a readable drop schedule)"
    return {"kind": obj.get("kind"), **run_meta(args, method), **(obj.get("normalization") or {}),
            "next_step": obj.get("next_step")}


def split_checkpoint(obj: dict, path="<checkpoint>") -> Tuple[Dict[str, torch.Tensor], dict]:
    """(state dict, meta) from any supported format."""
    meta = obj.get("meta", {}) if isinstance(obj.get("meta"), dict) else {}
    if not meta and isinstance(obj.get("args"), dict) and "iters_per_epoch" in obj:
        meta = _training_checkpoint_meta(obj)  # this suite's checkpoint-*.pth
    for key in ("model", "state_dict", "module"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()
          if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"checkpoint {path} contains no tensors under 'model', "
                              "'state_dict' or at the top level")
    return sd, meta


def to_timm_layout(sd: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Convert original ConvNeXt / Swin layouts and resize ViT position embeddings
    to ``model``, with timm's own filters. Other state dicts pass through."""
    from timm.models import convnext, mlp_mixer, swin_transformer, vision_transformer
    if isinstance(model, convnext.ConvNeXt):
        return convnext.checkpoint_filter_fn(sd, model)
    if isinstance(model, swin_transformer.SwinTransformer):
        return swin_transformer.checkpoint_filter_fn(sd, model)
    if isinstance(model, vision_transformer.VisionTransformer):
        return vision_transformer.checkpoint_filter_fn(sd, model)
    if isinstance(model, mlp_mixer.MlpMixer):
        return dict(sd)
    return dict(sd)


def _head_prefixes(model: nn.Module) -> Tuple[str, ...]:
    """Key prefixes of the classifier only, as timm's ``pretrained_cfg`` names it:
    ConvNeXt's classifier is ``head.fc`` while its ``head.norm`` is the final
    LayerNorm of the backbone, which must load like any other backbone weight."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    classifier = cfg.get("classifier", "head")
    names = classifier if isinstance(classifier, (list, tuple)) else [classifier]
    return tuple(f"{n}." for n in names)


@dataclass
class LoadReport:
    path: str
    sha256: str
    meta: dict
    loaded: int
    skipped_head: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    @property
    def provenance(self) -> dict:
        return _provenance(self.path, self.sha256, self.meta)


def _listing(keys: List[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_pretrained(model: nn.Module, path, *, keep_head: bool = False,
                    expected_arch: Optional[str] = None) -> LoadReport:
    """Load a pretrained checkpoint into a timm model. The classifier head is
    dropped unless ``keep_head`` (and then only if its shape fits). Any other
    model key missing from the file is an error that lists the keys."""
    path = Path(path)
    sd, meta = split_checkpoint(read_checkpoint(path), path)
    arch = meta.get("arch")
    if expected_arch and arch and not same_architecture(arch, expected_arch):
        raise CheckpointError(f"checkpoint {path} was pretrained as {arch!r}, "
                              f"but the model here is {expected_arch!r}")
    try:
        sd = to_timm_layout(sd, model)
        conversion_error = None
    except (KeyError, RuntimeError, ValueError) as exc:
        # Usually a file of another architecture: the key check below says which keys are missing.
        conversion_error = exc
    own = model.state_dict()
    heads = _head_prefixes(model)
    skipped = [k for k in sd if k.startswith(heads) and
               (not keep_head or k not in own or own[k].shape != sd[k].shape)]
    for k in skipped:
        sd.pop(k)
    # Buffers a model recomputes (e.g. Swin's attention masks) need not be in the file.
    persistent = {k for k in own if not k.endswith(("relative_position_index", "attn_mask"))}
    missing = sorted(k for k in persistent - set(sd) if not k.startswith(heads))
    if missing:
        raise CheckpointError(
            f"checkpoint {path} does not match {type(model).__name__}"
            f"{' (' + expected_arch + ')' if expected_arch else ''}: {len(missing)} backbone keys "
            f"missing from the file: {_listing(missing)}")
    if conversion_error is not None:
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: "
                              f"converting its keys failed at {conversion_error}")
    bad_shape = sorted(k for k in sd if k in own and own[k].shape != sd[k].shape)
    if bad_shape:
        details = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in bad_shape]
        raise CheckpointError(f"checkpoint {path} has keys whose shapes do not match the model "
                              f"(file vs model): {_listing(details)}")
    unexpected = sorted(k for k in sd if k not in own)
    model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    return LoadReport(str(path), file_sha256(path), meta, len(sd) - len(unexpected), skipped, unexpected)


def _provenance(path, sha256: str, meta: dict) -> dict:
    return {"path": str(Path(path).resolve()), "sha256": sha256,
            "pretrain": meta or {"method": "unknown (no meta in file; e.g. the paper's release)"}}


def provenance(path) -> dict:
    """What every downstream run records about its starting checkpoint: path,
    sha256 and the pretraining ``meta`` (arch, method, rates, ...)."""
    path = Path(path)
    _, meta = split_checkpoint(read_checkpoint(path), path)
    return _provenance(path, file_sha256(path), meta)

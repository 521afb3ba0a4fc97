"""Reading a run dir into one ``RunRecord``, the finished rule, discovery, and the
writers' entry points. The schema is documented in ``records/__init__.py``."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

from common.files import (
    RecordError,
    append_jsonl,
    file_sha256,
    read_json,
    read_json_or_none,
    read_yaml_mapping,
    write_json,
)
from common.names import CONFIG, EVAL_METRICS, METRICS, RUN_INFO, TENSORBOARD, TEST_METRICS, VAL_METRICS

from .metrics import KINDS, TASK_NAMES, extract_metrics

__all__ = ["RunRecord", "FINISHED", "UNFINISHED", "NO_METRICS", "STALE", "UNREADABLE", "read_run", "discover",
           "is_finished", "started_from", "mark_stale", "write_run_info", "write_final_metrics",
           "write_eval_metrics", "record_validation", "write_test_metrics", "mark_finished", "read_run_info",
           "run_label"]

# Statuses of a run, as compare shows them.
FINISHED = "finished"
UNFINISHED = "unfinished"      # no final metrics: crashed, killed, or still running
NO_METRICS = "no metrics"      # finished, but the evaluator returned nothing (the record's note says why)
STALE = "stale"                # finished, but the pretrained checkpoint it started from has changed since
UNREADABLE = "unreadable"      # a record file is damaged (compare --skip_unreadable)

# Flags of a training run that are not its recipe: what identifies the run otherwise
# (architecture, drop method, seed, dataset) and what does not change the numbers.
_NOT_RECIPE = {"model", "model_kwargs", "dropout", "drop_path", "drop_mode", "drop_schedule", "cutoff_epoch",
               "seed", "output_dir", "resume", "eval", "num_workers", "ckpt_every_iters", "print_freq",
               "tensorboard", "data_path", "finetune", "paper_top1", "diag_every", "diag_batches", "diag_samples",
               "config", "dataset", "check_md5", "num_classes", "eval_every"}
# The pretraining variant at the end of a det/seg config name (det_configs/vit_tiny/..._1x_coco_early-sd.py).
_VARIANT = re.compile(r"_(?:no|early|late|standard)-(?:dropout|sd)$")
_MM_DATASETS = {"mmdet": "coco", "mmseg": "ade20k"}


def _fingerprint(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _arch_label(model, model_kwargs) -> str:
    if not model:
        return "?"
    kwargs = model_kwargs if isinstance(model_kwargs, dict) else {}
    if not kwargs:
        return str(model)
    return f"{model}(" + ",".join(f"{k}={kwargs[k]}" for k in sorted(kwargs)) + ")"


def _int_or_none(value) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class RunRecord:
    """One run, read from its dir: identity, status and the numbers compared."""
    run_dir: Path
    kind: str                               # pretrain | cls_finetune | mmdet | mmseg ("?" if unreadable)
    status: str                             # FINISHED, UNFINISHED, NO_METRICS, STALE or UNREADABLE
    note: str = ""                          # why a run is not FINISHED
    dataset: str = "?"                      # imagenet folder name, cls dataset, coco, ade20k
    recipe: str = "?"                       # short label, e.g. "300 ep", "finetune, 100 ep", a det config name
    recipe_id: str = "?"                    # label + fingerprint of everything in the recipe
    arch: str = "?"                         # architecture, with its model_kwargs
    method: str = "?"                       # the pretraining method ("no dropout", "early-linear dropout 0.1 ...")
    finetune_method: Optional[str] = None   # transfer runs: the drop schedule while fine-tuning
    pretrain_recipe: Optional[str] = None   # transfer runs: e.g. "pretrained 300 ep"
    pretrain_seed: Optional[int] = None     # the seed of the pretraining run (its own seed for pretraining)
    pretrain_sha256: Optional[str] = None   # transfer runs: the checkpoint it started from
    start_checkpoint: Optional[str] = None  # ... and its path
    seed: Optional[int] = None              # this run's seed (None: not recorded / not configured)
    paper_top1: Optional[float] = None      # pretraining presets: the paper's ImageNet top-1
    metrics: Dict[str, float] = field(default_factory=dict)  # metric id -> value in points (records.metrics)
    info: dict = field(default_factory=dict)         # run.json as written
    raw_metrics: Optional[dict] = None               # metrics.json as written

    @property
    def task(self) -> str:
        return TASK_NAMES.get(self.kind, self.kind)

    @property
    def is_transfer(self) -> bool:
        return self.kind in ("cls_finetune", "mmdet", "mmseg")

    @property
    def group(self) -> tuple:
        """Runs that may be compared: same task, dataset, recipe, fine-tuning and architecture."""
        return (self.kind, self.dataset, self.recipe_id, self.finetune_method or "", self.arch,
                self.pretrain_recipe or "")

    @property
    def pair_key(self) -> tuple:
        """What a method's run and its baseline run share to form a pair: the pretraining
        seed, and for a transfer run also its own seed."""
        return (self.pretrain_seed, self.seed) if self.is_transfer else (self.seed,)

    @property
    def usable(self) -> bool:
        return self.status == FINISHED


# ---- reading ---------------------------------------------------------------------------------

def read_run_info(run_dir) -> dict:
    return read_json(Path(run_dir) / RUN_INFO)


def _finished_rule(metrics_json: dict) -> bool:
    # det/seg records say "finished"; training runs write metrics.json last (older ones
    # without the key: a "final" entry means it was written at the end).
    if "finished" in metrics_json:
        return metrics_json["finished"] is True
    return "final" in metrics_json


def is_finished(run_dir) -> bool:
    """The one finished rule, for every kind of run: ``metrics.json`` exists and says
    so (det/seg: ``finished: true``; training runs: written last, with ``final``).
    A ``metrics.json`` that exists but cannot be read counts as finished, so that no
    runner overwrites it: ``started_from`` gives None for it and readers report it."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return False
    rec = read_json_or_none(path)
    return True if rec is None else _finished_rule(rec)


def started_from(run_dir) -> Optional[str]:
    """sha256 of the pretrained checkpoint a finished transfer run started from, from its
    ``metrics.json`` (older det/seg records: from ``run.json``); None when not readable."""
    run_dir = Path(run_dir)
    rec = read_json_or_none(run_dir / METRICS)
    if rec is None:
        return None
    sha = rec.get("pretrain_sha256")
    if isinstance(sha, str):
        return sha
    info = read_json_or_none(run_dir / RUN_INFO) or {}
    if (info.get("kind") or info.get("task")) in ("mmdet", "mmseg"):
        start = info.get("start_checkpoint")
        if isinstance(start, dict) and isinstance(start.get("sha256"), str):
            return start["sha256"]
    return None


def _training_identity(run_dir: Path, info: dict, kind: str) -> dict:
    cfg_path = run_dir / CONFIG
    cfg = read_yaml_mapping(cfg_path) if cfg_path.is_file() else {}
    flags = {k: v for k, v in cfg.items() if k not in _NOT_RECIPE}
    epochs = cfg.get("epochs")
    if kind == "pretrain":
        label = f"{epochs} ep" if epochs is not None else "?"
        data_path = info.get("data_path") or cfg.get("data_path")
        paper = info.get("paper_top1", cfg.get("paper_top1"))
        seed = _int_or_none(cfg.get("seed"))
        return dict(dataset=Path(data_path).name if data_path else "?", recipe=label,
                    recipe_id=f"{label}#{_fingerprint(flags)}" if cfg else "?",
                    arch=_arch_label(info.get("model") or cfg.get("model"), cfg.get("model_kwargs")),
                    method=str(info.get("method", "?")), seed=seed, pretrain_seed=seed,
                    paper_top1=float(paper) if isinstance(paper, (int, float)) else None)
    mode = info.get("mode") or ("linear_probe" if cfg.get("linear_probe") else "finetune")
    label = f"{mode}, {epochs} ep" if epochs is not None else str(mode)
    ident = _transfer_identity(info, own_model=info.get("model") or cfg.get("model"),
                               own_kwargs=cfg.get("model_kwargs"))
    return dict(ident, dataset=str(info.get("dataset", "?")), recipe=label,
                recipe_id=f"{label}#{_fingerprint(flags)}" if cfg else label,
                finetune_method=str(info.get("method", "?")), seed=_int_or_none(cfg.get("seed")))


def _transfer_identity(info: dict, own_model, own_kwargs=None) -> dict:
    """Architecture and pretraining method from the start checkpoint's provenance."""
    start = info.get("start_checkpoint") if isinstance(info.get("start_checkpoint"), dict) else {}
    meta = start.get("pretrain") if isinstance(start.get("pretrain"), dict) else {}
    arch = meta.get("arch")
    epochs, size = meta.get("epochs"), meta.get("input_size")
    pre_recipe = (f"pretrained {epochs} ep" + (f" at {size}px" if size not in (None, 224) else "")
                  if epochs is not None else "pretrained ?")
    method = meta.get("method") or ("no pretrained checkpoint" if not start else "?")
    return dict(arch=_arch_label(arch, meta.get("model_kwargs")) if arch else _arch_label(own_model, own_kwargs),
                method=str(method), pretrain_recipe=pre_recipe, pretrain_seed=_int_or_none(meta.get("seed")),
                pretrain_sha256=start.get("sha256"), start_checkpoint=start.get("path"))


def _mm_identity(info: dict, kind: str) -> dict:
    stem = Path(str(info.get("config") or "?")).stem
    label = _VARIANT.sub("", stem)
    recipe = info.get("recipe")
    # Older records hold only "seed" (the seed mmengine used: a random one unless configured).
    seed = info["randomness_seed"] if "randomness_seed" in info else info.get("seed")
    ident = _transfer_identity(info, own_model=info.get("backbone"))
    return dict(ident, dataset=_MM_DATASETS[kind], recipe=label,
                recipe_id=f"{label}#{_fingerprint(recipe)}" if recipe else label,
                finetune_method=str(info.get("fine_tune_drop", "?")), seed=_int_or_none(seed))


def read_run(run_dir) -> RunRecord:
    """The record of one run dir (any kind, old or new); a damaged record file is a
    ``RecordError`` naming it."""
    run_dir = Path(run_dir)
    info_path = run_dir / RUN_INFO
    if not info_path.is_file():
        raise RecordError(f"{run_dir}: no {RUN_INFO} (not a run dir of this suite)")
    info = read_json(info_path)
    kind = info.get("kind") or info.get("task")  # older det/seg records call it task
    if kind not in KINDS:
        raise RecordError(f"{info_path}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    ident = _training_identity(run_dir, info, kind) if kind in ("pretrain", "cls_finetune") else \
        _mm_identity(info, kind)
    metrics_path = run_dir / METRICS
    raw = read_json(metrics_path) if metrics_path.is_file() else None
    values: Dict[str, float] = {}
    if raw is None:
        status, note = UNFINISHED, f"no {METRICS}: crashed, killed or still running"
    elif not _finished_rule(raw):
        where = f" (last validation at epoch {raw.get('epoch')}, iteration {raw.get('iter')})" if "iter" in raw else ""
        status, note = UNFINISHED, f"training did not end{where}: crashed, killed or still running"
    else:
        values = extract_metrics(kind, raw)
        if values:
            status, note = FINISHED, ""
        else:
            status, note = NO_METRICS, str(raw.get("note") or f"{metrics_path} holds none of the task's metrics")
    return RunRecord(run_dir=run_dir, kind=kind, status=status, note=note, metrics=values, info=info,
                     raw_metrics=raw, **ident)


def _run_dirs(root: Path) -> List[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if RUN_INFO in filenames:
            found.append(Path(dirpath))
            dirnames[:] = []  # a run dir holds no other run
        else:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != TENSORBOARD)
    return found


def discover(roots: Iterable, skip_unreadable: bool = False) -> List[RunRecord]:
    """Every run under ``roots`` (dirs holding a ``run.json``, searched recursively),
    sorted by path. A damaged record raises ``RecordError`` unless ``skip_unreadable``:
    then the run is returned with status UNREADABLE and the error as its note."""
    records = []
    seen = set()
    for root in map(Path, roots):
        if not root.is_dir():
            raise RecordError(f"{root}: no such directory")
        for run_dir in _run_dirs(root):
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            try:
                records.append(read_run(run_dir))
            except RecordError as exc:
                if not skip_unreadable:
                    raise
                records.append(RunRecord(run_dir=run_dir, kind="?", status=UNREADABLE, note=str(exc)))
    return sorted(records, key=lambda r: str(r.run_dir))


def mark_stale(records: Iterable[RunRecord], hasher: Callable[[Path], str] = file_sha256) -> None:
    """Mark finished transfer runs STALE whose start checkpoint, still at its recorded
    path, no longer has the recorded sha256 (each file hashed once). A checkpoint
    that is gone cannot be checked; the run keeps its status and says so in its note."""
    cache: Dict[str, Optional[str]] = {}
    for rec in records:
        if not rec.is_transfer or rec.status not in (FINISHED, NO_METRICS) or not rec.pretrain_sha256:
            continue
        path = rec.start_checkpoint
        if not path or not Path(path).is_file():
            rec.note = (rec.note + "; " if rec.note else "") + f"start checkpoint {path} not found: not checked"
            continue
        if path not in cache:
            cache[path] = hasher(Path(path))
        if cache[path] != rec.pretrain_sha256:
            rec.status = STALE
            rec.note = f"{path} changed after this run (sha256 {rec.pretrain_sha256[:12]}... then, " \
                       f"{cache[path][:12]}... now)"


def run_label(run_dir) -> str:
    """'<arch>: <method>' of a run dir (its dir name when it has no readable record)."""
    try:
        rec = read_run(run_dir)
    except RecordError:
        return Path(run_dir).name
    return f"{rec.arch}: {rec.method}"


# ---- writing (every writer of the suite) ---------------------------------------------------

def write_run_info(run_dir, info: dict) -> None:
    """``run.json``: what the run is, written when it starts."""
    write_json(Path(run_dir) / RUN_INFO, info)


def write_final_metrics(run_dir, metrics: dict) -> None:
    """Training runs: ``metrics.json``, written last (its presence marks the run finished)."""
    write_json(Path(run_dir) / METRICS, {**metrics, "finished": True})


def write_eval_metrics(run_dir, metrics: dict) -> None:
    """``--eval`` of a training run: ``metrics_eval.json``, beside a training run's records."""
    write_json(Path(run_dir) / EVAL_METRICS, metrics)


def record_validation(work_dir, rec: dict) -> None:
    """det/seg: one validation, appended to ``metrics_val.jsonl`` and kept as ``metrics.json``."""
    append_jsonl(Path(work_dir) / VAL_METRICS, rec)
    write_json(Path(work_dir) / METRICS, rec)


def write_test_metrics(work_dir, rec: dict) -> None:
    """det/seg: ``metrics_test.json`` of tools/test.py."""
    write_json(Path(work_dir) / TEST_METRICS, rec)


def mark_finished(work_dir, finished: bool) -> None:
    """det/seg, after training: ``finished`` in ``metrics.json``, and for a finished run
    the sha256 of its start checkpoint (``pretrain_sha256``, as classification runs
    record it). Nothing to mark when no validation ran."""
    work_dir = Path(work_dir)
    rec = read_json_or_none(work_dir / METRICS)
    if rec is None:
        return
    rec["finished"] = bool(finished)
    start = (read_json_or_none(work_dir / RUN_INFO) or {}).get("start_checkpoint")
    if isinstance(start, dict) and start.get("sha256"):
        rec["pretrain_sha256"] = start["sha256"]
    write_json(work_dir / METRICS, rec)

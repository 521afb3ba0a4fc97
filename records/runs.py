"""Reading a run dir into one ``RunRecord``, the finished rule, discovery, and the
writers' entry points. The schema is documented in ``records/__init__.py``."""
from __future__ import annotations

import hashlib
import json
import os
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
from common.provenance import source_commit

from .metrics import KINDS, TASK_NAMES, extract_metrics

__all__ = ["RunRecord", "Group", "FINISHED", "UNFINISHED", "NO_METRICS", "STALE", "UNREADABLE", "ABSENT", "Hashes",
           "verdict", "read_run", "discover", "is_finished", "started_from", "mark_stale", "write_run_info",
           "write_final_metrics", "write_eval_metrics", "record_validation", "write_test_metrics", "mark_finished",
           "run_label"]

# Statuses of a run, as compare shows them.
FINISHED = "finished"
UNFINISHED = "unfinished"      # no final metrics: crashed, killed, or still running
NO_METRICS = "no metrics"      # finished, but the evaluator returned nothing (the record's note says why)
STALE = "stale"                # finished, but the pretrained checkpoint it started from has changed since
UNREADABLE = "unreadable"      # a record file exists but cannot be read (named in the note)
ABSENT = "absent"              # neither run.json nor metrics.json: the run never started (verdict only)

# Flags of a training run that are not its recipe: what identifies the run otherwise
# (architecture, drop method, seed, dataset) and what does not change the numbers.
_NOT_RECIPE = {"model", "model_kwargs", "dropout", "drop_path", "drop_mode", "drop_schedule", "cutoff_epoch",
               "seed", "output_dir", "resume", "eval", "num_workers", "ckpt_every_iters", "print_freq",
               "tensorboard", "data_path", "finetune", "paper_top1", "diag_every", "diag_until_epoch",
               "diag_batches", "diag_samples", "config", "dataset", "check_md5", "num_classes", "eval_every"}
# det/seg config names from before one config per recipe, which old run dirs record: each
# recipe had a copy per pretraining variant that differed only in its checkpoint path
# (det_configs/vit_tiny/mask-rcnn_vit-tiny_fpn_1x_coco_early-sd.py). Retired name -> recipe.
_RETIRED_VARIANTS = {"vit-tiny": ("no-dropout", "early-dropout", "early-sd", "late-sd"),
                     "swin-femto": ("no-dropout", "early-dropout", "early-sd", "late-sd"),
                     "convnext-femto": ("no-dropout", "early-sd", "late-sd")}
RETIRED_CONFIGS = {f"{recipe}_{variant}": recipe for arch, variants in _RETIRED_VARIANTS.items()
                   for recipe in (f"mask-rcnn_{arch}_fpn_1x_coco", f"mask-rcnn_{arch}_fpn_ms-3x_coco",
                                  f"upernet_{arch}_512x512_160k_ade20k") for variant in variants}
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


@dataclass(frozen=True)
class Group:
    """What the runs that may be compared share (``RunRecord.group``)."""
    kind: str
    dataset: str
    recipe_id: str
    finetune_method: str  # "" for pretraining
    arch: str
    pretrain_recipe: str  # "" for pretraining

    @property
    def sort_key(self) -> tuple:
        """Tasks in ``KINDS`` order, then by name."""
        return (KINDS.index(self.kind), self.dataset, self.recipe_id, self.finetune_method, self.arch,
                self.pretrain_recipe)


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
    def group(self) -> "Group":
        """Runs that may be compared: same task, dataset, recipe, fine-tuning and architecture."""
        return Group(self.kind, self.dataset, self.recipe_id, self.finetune_method or "", self.arch,
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


def _started_sha(info: dict, metrics_json: Optional[dict]) -> Optional[str]:
    """The one "started from" reader: the sha256 of the checkpoint a transfer run started
    from, as its finished ``metrics.json`` records it (``pretrain_sha256``), else as its
    ``run.json`` does (``start_checkpoint.sha256``: older det/seg records, unfinished runs)."""
    sha = (metrics_json or {}).get("pretrain_sha256")
    if isinstance(sha, str):
        return sha
    start = info.get("start_checkpoint")
    return start["sha256"] if isinstance(start, dict) and isinstance(start.get("sha256"), str) else None


def started_from(run_dir) -> Optional[str]:
    """sha256 of the pretrained checkpoint a finished transfer run started from
    (``_started_sha``); None when its ``metrics.json`` is missing or cannot be read."""
    run_dir = Path(run_dir)
    rec = read_json_or_none(run_dir / METRICS)
    if rec is None:
        return None
    return _started_sha(read_json_or_none(run_dir / RUN_INFO) or {}, rec)


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
    # the fixed-feature protocol fits a logistic regression to convergence: it has no epochs
    label = f"{mode}, {epochs} ep" if epochs is not None and mode != "fixed_feature" else str(mode)
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
                start_checkpoint=start.get("path"))


def _mm_identity(info: dict, kind: str) -> dict:
    # The recipe is the config (one per architecture and recipe); the pretraining is the
    # checkpoint's meta (_transfer_identity). Old run dirs: the retired variant name's recipe.
    stem = Path(str(info.get("config") or "?")).stem
    label = RETIRED_CONFIGS.get(stem, stem)
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
    pretrain_sha256 = _started_sha(info, raw) if kind in ("cls_finetune", "mmdet", "mmseg") else None
    return RunRecord(run_dir=run_dir, kind=kind, status=status, note=note, metrics=values, info=info,
                     raw_metrics=raw, pretrain_sha256=pretrain_sha256, **ident)


class Hashes:
    """sha256 of each checkpoint file, computed once per invocation (they are hundreds of
    MB); None for a file that is not there."""

    def __init__(self, hasher: Callable[[Path], str] = file_sha256):
        self._hasher, self._cache = hasher, {}

    def __call__(self, path) -> Optional[str]:
        path = Path(path)
        if path not in self._cache:
            self._cache[path] = self._hasher(path) if path.is_file() else None
        return self._cache[path]


def _check_stale(rec: RunRecord, hashes: Hashes, checkpoint=None) -> None:
    """The one staleness rule. A finished transfer run is STALE when the checkpoint it
    stands for now has another sha256 than the one it started from (``pretrain_sha256``).
    That checkpoint is ``checkpoint`` when the caller knows which file the run should
    stand for (the suite: the one its job passes), else the one at the run's recorded
    path. A run that should stand for ``checkpoint`` but records no sha256 cannot show it
    started from it: STALE too. A checkpoint file that is gone cannot be checked: the run
    keeps its status and says so in its note."""
    if not rec.is_transfer or rec.status not in (FINISHED, NO_METRICS):
        return
    path = checkpoint if checkpoint is not None else rec.start_checkpoint
    if not rec.pretrain_sha256:
        if checkpoint is not None:
            rec.status, rec.note = STALE, "its record names no starting checkpoint sha256"
        return
    now = hashes(path) if path else None
    if now is None:
        rec.note = (rec.note + "; " if rec.note else "") + f"start checkpoint {path} not found: not checked"
    elif now != rec.pretrain_sha256:
        rec.status = STALE
        rec.note = f"{path} changed after this run (sha256 {rec.pretrain_sha256[:12]}... then, {now[:12]}... now)"


def verdict(run_dir, hashes: Optional[Hashes] = None, checkpoint=None) -> RunRecord:
    """The one verdict on a run dir, for the suite runner and compare alike: its record
    with ``status`` FINISHED, NO_METRICS, UNFINISHED, STALE (checked when ``hashes`` is
    given; ``checkpoint``: see ``_check_stale``), UNREADABLE (a record file exists but
    cannot be read: the note is the error, naming the file) or ABSENT (no record: the run
    never started). It raises nothing for a damaged record."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_INFO).exists() and not (run_dir / METRICS).exists():
        return RunRecord(run_dir=run_dir, kind="?", status=ABSENT, note=f"no {RUN_INFO}: not started")
    try:
        rec = read_run(run_dir)
    except RecordError as exc:
        return RunRecord(run_dir=run_dir, kind="?", status=UNREADABLE, note=str(exc))
    if hashes is not None:
        _check_stale(rec, hashes, checkpoint)
    return rec


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
            rec = verdict(run_dir)
            if rec.status == UNREADABLE and not skip_unreadable:
                raise RecordError(rec.note)
            records.append(rec)
    return sorted(records, key=lambda r: str(r.run_dir))


def mark_stale(records: Iterable[RunRecord], hasher: Callable[[Path], str] = file_sha256) -> None:
    """Mark finished transfer runs STALE by the one staleness rule (``_check_stale``,
    against each run's recorded start checkpoint; each file hashed once)."""
    hashes = Hashes(hasher)
    for rec in records:
        _check_stale(rec, hashes)


def run_label(run_dir) -> str:
    """'<arch>: <method>' of a run dir (its dir name when it has no readable record)."""
    try:
        rec = read_run(run_dir)
    except RecordError:
        return Path(run_dir).name
    return f"{rec.arch}: {rec.method}"


# ---- writing (every writer of the suite) ---------------------------------------------------

def write_run_info(run_dir, info: dict) -> None:
    """``run.json``: what the run is, written when it starts, with the commit of the code that runs it."""
    write_json(Path(run_dir) / RUN_INFO, {**info, "commit": source_commit()})


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

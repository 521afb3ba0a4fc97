"""The files of a run record: their names, atomic writes and forgiving reads.

Every writer and reader of the suite goes through here, so a file name is
spelled once.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

from backbones.errors import UserError

__all__ = ["RecordError", "RUN_INFO", "METRICS", "EVAL_METRICS", "VAL_METRICS", "TEST_METRICS", "CONFIG",
           "EVAL_CONFIG", "EPOCH_LOG", "ITER_LOG", "DIAGNOSTICS", "MM_SCALARS", "write_json", "append_jsonl",
           "read_json", "read_json_or_none", "read_jsonl", "read_yaml"]

RUN_INFO = "run.json"              # what the run is (written when it starts)
METRICS = "metrics.json"           # final numbers (training runs: written last; det/seg: per validation)
EVAL_METRICS = "metrics_eval.json"  # --eval of a training run
VAL_METRICS = "metrics_val.jsonl"  # det/seg: one line per validation
TEST_METRICS = "metrics_test.json"  # det/seg: tools/test.py
CONFIG = "config.yaml"             # training runs: the effective flags
EVAL_CONFIG = "config_eval.yaml"
EPOCH_LOG = "log.jsonl"            # training runs: one line per epoch (training/logger.py writes it)
ITER_LOG = "log_iter.jsonl"        # training runs: one line per update
DIAGNOSTICS = "diagnostics.jsonl"  # pretraining with --diag_every
MM_SCALARS = "vis_data/scalars.json"  # det/seg: mmengine's per-iteration log, under <work_dir>/<timestamp>/


class RecordError(UserError):
    """A run record that cannot be read: the message names the file."""


def write_json(path, obj) -> None:
    """``obj`` as JSON, atomically: a temporary file in the same folder, then
    ``os.replace``, so a reader (or a crash) never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    data = json.dumps(obj, indent=1, default=str).encode()
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def append_jsonl(path, obj) -> None:
    """One JSON line; readers drop a last line cut by a crash."""
    with open(path, "a") as f:
        f.write(json.dumps(obj, default=str) + "\n")
        f.flush()


def read_json(path) -> dict:
    """The JSON object in ``path``; anything else is a ``RecordError`` naming the file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not valid JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(obj, dict):
        raise RecordError(f"{path}: expected a JSON object, found a {type(obj).__name__}")
    return obj


def read_json_or_none(path) -> Optional[dict]:
    try:
        return read_json(path)
    except RecordError:
        return None


def read_jsonl(path) -> List[dict]:
    """The objects of a JSON-lines log; a line cut by a kill ends the log (nothing after it
    can be trusted), a missing file is an empty log."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            break
        if isinstance(rec, dict):
            out.append(rec)
    return out


def read_yaml(path) -> dict:
    import yaml
    path = Path(path)
    try:
        obj = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise RecordError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(obj, dict):
        raise RecordError(f"{path}: expected a mapping of flags, found a {type(obj).__name__}")
    return obj


"""What to compare: the roots to search (dirs, or suite files naming their
``output_root``), the runs found under them (``records.discover``), the metrics asked
for, and the checks that say in one line when the question cannot be answered."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Sequence

import records
from common.errors import UserError
from common.files import read_yaml_mapping

__all__ = ["DEFAULT_BASELINE", "resolve_roots", "select_metrics", "find_runs", "check_request"]

DEFAULT_BASELINE = "no dropout"


def _suite_output_root(path: Path) -> Path:
    if not path.is_file():
        raise UserError(f"suite file {path} does not exist")
    spec = read_yaml_mapping(path, f"suite file {path}", "suite keys", UserError)
    if not isinstance(spec.get("output_root"), str):
        raise UserError(f"suite file {path}: no 'output_root' key naming the dir its runs are written to")
    return Path(spec["output_root"])


def resolve_roots(roots: Sequence[str]) -> List[Path]:
    """Dirs to scan; a .yaml/.yml root is a suite file whose ``output_root`` (relative to
    the current directory) is scanned."""
    out = []
    for root in roots:
        path = Path(root)
        if path.suffix in (".yaml", ".yml"):
            path = _suite_output_root(path)
        if not path.exists():
            raise UserError(f"root {path} does not exist")
        if not path.is_dir():
            raise UserError(f"root {path} is not a directory (nor a suite .yaml file)")
        out.append(path)
    return out


def select_metrics(requested: Optional[List[str]]) -> Callable[..., List[records.Metric]]:
    """(kind, dataset) -> metrics to compare: the headline metrics (a dataset's own where
    it has one, e.g. mean per-class accuracy for Pets), every metric ('all'), or the named ones."""
    if not requested:
        return records.headline_metrics
    if "all" in requested:
        return lambda kind, dataset=None: records.metrics_of(kind)
    known = sorted({m.id for m in records.METRIC_RULES})
    for name in requested:
        if name not in known:
            raise UserError(f"--metric {name}: unknown metric; known: all, {', '.join(known)}")
    return lambda kind, dataset=None: [m for m in records.metrics_of(kind) if m.id in requested]


def find_runs(roots: Sequence[str], skip_unreadable: bool) -> List[records.RunRecord]:
    """Every run under ``roots``; none at all is a ``UserError``."""
    paths = resolve_roots(roots)
    runs = records.discover(paths, skip_unreadable=skip_unreadable)
    if not runs:
        raise UserError(f"no run found under {', '.join(map(str, paths))} (a run dir holds a run.json)")
    return runs


def check_request(runs: List[records.RunRecord], baselines: Optional[List[str]], metric_names: Optional[List[str]],
                  metrics: Callable[..., List[records.Metric]]) -> None:
    """A named baseline no run has, or named metrics no run reports, is a ``UserError``."""
    found = sorted({r.method for r in runs if r.kind in records.KINDS})
    for baseline in baselines or []:
        if baseline not in found:
            raise UserError(f"--baseline {baseline!r}: no run has this pretraining method; found: {'; '.join(found)}")
    if metric_names and "all" not in metric_names:
        kinds = {r.kind for r in runs}
        if not any(metrics(k) for k in kinds):
            raise UserError(f"--metric {' '.join(metric_names)}: no run found reports it (tasks found: "
                            f"{', '.join(sorted(records.TASK_NAMES.get(k, k) for k in kinds))})")

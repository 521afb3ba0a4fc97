"""A transfer sweep: every recipe x dataset x checkpoint x seed, one run each.

    python -m cls_finetune.sweep cls_configs/sweep_paper.yaml --nproc 8
    python -m cls_finetune.sweep cls_configs/sweep_paper.yaml --dry_run --only linear_probe/cifar100

Sweep file (YAML)::

    output_root: output/cls          # run dirs: <output_root>/<recipe>/<dataset>/<checkpoint>/seed<k>
    recipes:  {finetune: _base_/finetune.yaml, ...}      # config files, relative to the sweep file
    datasets: {cifar100: datasets/cifar100.yaml, ...}   # idem (dataset configs come after the recipe)
    checkpoints: {vit_tiny_no_dropout: output/pretrain/vit_tiny_no_dropout/weights.pth, ...}
    seeds: [0, 1, 2]
    flags: [--num_workers, "10"]     # optional, added to every run

Runs go one after another, each with ``--nproc`` processes (torchrun when
more than one). A run whose ``metrics.json`` exists is skipped and an
interrupted one resumes (``--resume auto``), so rerunning the command
continues a sweep. A finished run whose checkpoint has changed since (its
sha256 differs from the one in ``metrics.json``, e.g. after a pretraining
rerun) is reported as stale and left as it is; an interrupted one refuses to
resume from other weights. A failed run does not stop the others; the exit
code is 1 if any failed or is stale.
"""
from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from backbones.checkpoint import file_sha256
from pretrain.config import ConfigError, read_yaml_mapping

__all__ = ["SweepRun", "expand", "load_sweep", "run_sweep"]


@dataclass
class SweepRun:
    key: str                  # "<recipe>/<dataset>/<checkpoint>/seed<k>"
    output_dir: Path
    argv: List[str]           # cls_finetune flags
    checkpoint: Path          # the pretrained weights it starts from

    @property
    def finished(self) -> bool:
        return (self.output_dir / "metrics.json").is_file()

    def started_from(self) -> Optional[str]:
        """sha256 of the weights the finished run started from (None: not readable)."""
        try:
            return json.loads((self.output_dir / "metrics.json").read_text())["pretrain_sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return None


def load_sweep(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    spec = read_yaml_mapping(path, f"sweep file {path}", "output_root, recipes, datasets, checkpoints, seeds")
    spec["base_dir"] = str(path.parent)
    return spec


def expand(spec: dict) -> List[SweepRun]:
    """All runs of a sweep spec, in order recipe > dataset > checkpoint > seed."""
    unknown = sorted(set(spec) - {"output_root", "recipes", "datasets", "checkpoints", "seeds", "flags",
                                  "base_dir"})
    if unknown:
        raise ConfigError(f"sweep: unknown key(s) {', '.join(unknown)}")
    for key in ("recipes", "datasets", "checkpoints", "seeds"):
        if not spec.get(key):
            raise ConfigError(f"sweep: '{key}' is missing or empty")
    for key, wanted in (("recipes", dict), ("datasets", dict), ("checkpoints", dict), ("seeds", list),
                        ("flags", list)):
        if not isinstance(spec.get(key, wanted()), wanted):
            raise ConfigError(f"sweep: '{key}' must be a {'list' if wanted is list else 'mapping of name: path'}")
    base = Path(spec.get("base_dir", "."))
    root = Path(spec.get("output_root", "output/cls"))
    flags = [str(f) for f in spec.get("flags", [])]
    runs = []
    for recipe, recipe_cfg in spec["recipes"].items():
        for dataset, dataset_cfg in spec["datasets"].items():
            configs = [str(base / recipe_cfg), str(base / dataset_cfg)]
            for name, ckpt in spec["checkpoints"].items():
                for seed in spec["seeds"]:
                    key = f"{recipe}/{dataset}/{name}/seed{seed}"
                    out = root / key
                    runs.append(SweepRun(key, out, ["--config", *configs, "--finetune", str(ckpt),
                                                    "--seed", str(seed), "--output_dir", str(out),
                                                    "--resume", "auto", *flags], Path(ckpt)))
    return runs


def command(run: SweepRun, nproc: int) -> List[str]:
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                "-m", "cls_finetune", *run.argv]
    return [sys.executable, "-m", "cls_finetune", *run.argv]


def run_sweep(runs: List[SweepRun], nproc: int = 1, dry_run: bool = False, quiet: bool = False) -> dict:
    """Run what is not finished; {key: 'done' | 'skipped' | 'stale: ...' | 'failed (exit N)' | 'planned'}.
    A finished run whose pretrained weights have changed since is 'stale', not redone:
    its dir is the record of the old weights, and only the user may delete it."""
    status = {}
    sha = functools.lru_cache(maxsize=None)(file_sha256)  # each checkpoint hashed once per sweep
    for i, run in enumerate(runs, 1):
        if run.finished:
            started, redo = run.started_from(), f"delete {run.output_dir} to rerun it"
            if started is None:
                status[run.key] = f"stale: no pretrain_sha256 readable in {run.output_dir / 'metrics.json'}; {redo}"
            elif run.checkpoint.is_file() and started != sha(run.checkpoint):
                status[run.key] = f"stale: {run.checkpoint} changed after this run; {redo}"
            else:
                status[run.key] = "skipped"
            continue
        cmd = command(run, nproc)
        print(f"[sweep {i}/{len(runs)}] {run.key}: {' '.join(cmd[1:])}", flush=True)
        if dry_run:
            status[run.key] = "planned"
            continue
        t0 = time.time()
        res = subprocess.run(cmd, stdout=subprocess.DEVNULL if quiet else None)
        status[run.key] = "done" if res.returncode == 0 else f"failed (exit {res.returncode})"
        print(f"[sweep {i}/{len(runs)}] {run.key}: {status[run.key]} in {time.time() - t0:.0f}s", flush=True)
    return status


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser("cls_finetune.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--nproc", type=int, default=1, help="processes (GPUs) per run")
    p.add_argument("--dry_run", action="store_true", help="print the commands of unfinished runs only")
    p.add_argument("--only", default="", help="run only keys starting with this, e.g. finetune/cifar100")
    args = p.parse_args(argv)
    try:
        runs = [r for r in expand(load_sweep(args.sweep)) if r.key.startswith(args.only)]
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: no run of {args.sweep} matches --only {args.only!r}", file=sys.stderr)
        return 2
    status = run_sweep(runs, args.nproc, args.dry_run)
    kinds = [v.split(":")[0] for v in status.values()]
    counts = {s: kinds.count(s) for s in sorted(set(kinds))}
    print("sweep: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    failed = [(k, v) for k, v in status.items() if v.startswith(("failed", "stale"))]
    for k, v in failed:
        print(f"  {k}: {v}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

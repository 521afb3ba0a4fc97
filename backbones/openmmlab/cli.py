"""What tools/train.py and tools/test.py share: loading a det or seg config with
the usual OpenMMLab flags, and checking that its datasets are on disk."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import List

from mmengine.config import Config, DictAction


class LaunchError(Exception):
    """A config or dataset problem, stated in one line."""


def common_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("config", help="a det_configs/ or seg_configs/ file (or any mmdet/mmseg config)")
    p.add_argument("--work-dir", help="where logs, checkpoints and the run record go")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default=None,
                   help="override config keys, e.g. train_dataloader.batch_size=4")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    return p


def load_config(args) -> Config:
    if not Path(args.config).is_file():
        raise LaunchError(f"config {args.config} does not exist")
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.launcher == "pytorch":
        import torch
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:  # one process needs no process group (and works on a CPU)
            cfg.launcher = "none"
        elif not torch.cuda.is_available():
            raise LaunchError(f"{world} processes without a GPU: mmengine's distributed setup needs CUDA "
                              "(NCCL); on a CPU train with one process")
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = str(Path("work_dirs") / Path(args.config).stem)
    return cfg


def _dataset_cfgs(cfg: Config, loaders: List[str]):
    for key in loaders:
        loader = cfg.get(key)
        if not loader:
            continue
        stack = [loader.get("dataset")]
        while stack:  # unwrap RepeatDataset / ConcatDataset / ClassBalancedDataset
            ds = stack.pop()
            if ds is None:
                continue
            if "dataset" in ds:
                stack.append(ds["dataset"])
            elif "datasets" in ds:
                stack.extend(ds["datasets"])
            else:
                yield key, ds


def check_datasets(cfg: Config, loaders: List[str]) -> None:
    """Fail in one line, naming the expected path, when a dataset is not on disk."""
    for key, ds in _dataset_cfgs(cfg, loaders):
        root = Path(ds.get("data_root") or "")
        if ds.get("data_root") and not root.is_dir():
            raise LaunchError(f"{key}: dataset folder {root} does not exist (data_root of {ds.get('type')}; "
                              "see README for the expected COCO / ADE20K layout)")
        ann = ds.get("ann_file")
        if ann and not (root / ann).is_file():
            raise LaunchError(f"{key}: annotation file {root / ann} does not exist")
        for name, sub in (ds.get("data_prefix") or {}).items():
            if isinstance(sub, str) and sub and not (root / sub).is_dir():
                raise LaunchError(f"{key}: {name} folder {root / sub} does not exist")


def build_runner(cfg: Config):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    import backbones  # noqa: F401  (registers the suite's backbone, hooks and runner)
    return RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)


def run_reporting_errors(body) -> int:
    """Run ``body()``; a LaunchError or CheckpointError becomes one line on stderr and exit code 2."""
    import sys
    from ..checkpoint import CheckpointError
    try:
        body()
    except (LaunchError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

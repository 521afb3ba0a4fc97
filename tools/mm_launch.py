"""What tools/train.py and tools/test.py share: loading a det or seg config with
the usual OpenMMLab flags, and checking that its datasets are on disk (and, for
COCO, that its annotations hold the config's classes) before a model is built."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import List, Optional

import torch
from mmengine.config import Config, DictAction

from backbones.errors import UserError, run_cli  # noqa: F401  (the launchers' error reporting)
from check_env import mmcv_ops_problems
from records.runs import RETIRED_CONFIGS


class LaunchError(UserError):
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


def retired_hint(config: str) -> Optional[str]:
    """What replaced a retired per-variant config (``..._1x_coco_early-sd.py``), if it is one."""
    path = Path(config)
    recipe = RETIRED_CONFIGS.get(path.stem)
    if recipe is None:
        return None
    variant = path.stem[len(recipe) + 1:].replace("-", "_")
    return (f"config {config} was retired (one config per recipe now): use {path.with_name(recipe + '.py')} "
            f"--pretrained output/pretrain/{path.parent.name}_{variant}/weights.pth")


def load_config(args) -> Config:
    if not Path(args.config).is_file():
        raise LaunchError(retired_hint(args.config) or f"config {args.config} does not exist")
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.launcher == "pytorch":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:  # one process needs no process group (and works on a CPU)
            cfg.launcher = "none"
        elif not torch.cuda.is_available():
            raise LaunchError(f"{world} processes without a GPU: mmengine's distributed setup needs CUDA "
                              "(NCCL); on a CPU train with one process")
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if isinstance(cfg.get("visualizer"), dict):
        # OpenMMLab configs name it 'visualizer'; mmengine reuses an instance of that name, so
        # a second run in one process would log into the first run's dir. Unnamed, it takes
        # the run's own (timestamped) experiment name.
        cfg.visualizer.pop("name", None)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = str(Path("work_dirs") / Path(args.config).stem)
    return cfg


def set_pretrained(cfg: Config, config: str, pretrained: Optional[str]) -> None:
    """``--pretrained PATH`` into the backbone's init_cfg; a suite backbone that would start
    from no checkpoint stops here, saying how to give one."""
    backbone = (cfg.get("model") or {}).get("backbone") or {}
    if backbone.get("type") != "TimmDropBackbone":
        if pretrained:
            raise LaunchError(f"--pretrained: {config} has no TimmDropBackbone to load it into")
        return
    if pretrained:
        if not Path(pretrained).is_file():
            raise LaunchError(f"--pretrained {pretrained}: no such file")
        backbone["init_cfg"] = dict(type="Pretrained", checkpoint=pretrained)
    init = backbone.get("init_cfg") or {}
    if init.get("type") == "Pretrained" and not init.get("checkpoint"):
        raise LaunchError(f"{config} names no pretrained checkpoint: pass --pretrained PATH (or --cfg-options "
                          "model.backbone.init_cfg.checkpoint=PATH)")


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


def explain_empty_coco(cfg: Config, loaders: List[str]) -> Optional[str]:
    """Why mmdet built an empty COCO dataset, if it is that none of the annotation
    file's categories is among the config's classes (mmengine then fails with
    'need at least one array to concatenate')."""
    from mmdet.registry import DATASETS
    for key, ds in _dataset_cfgs(cfg, loaders):
        ann = Path(ds.get("data_root") or "") / (ds.get("ann_file") or "")
        if ann.suffix != ".json" or not ann.is_file():
            continue
        wanted = (ds.get("metainfo") or {}).get("classes")
        if wanted is None:
            dataset_cls = DATASETS.get(ds.get("type"))
            wanted = getattr(dataset_cls, "METAINFO", {}).get("classes", ())
        try:
            names = [c["name"] for c in json.loads(ann.read_text()).get("categories", [])]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"{key}: annotation file {ann} is not readable COCO json"
        if not set(names) & set(wanted):
            return (f"{key}: none of the categories of {ann} ({', '.join(names[:8]) or 'none'}"
                    f"{', ...' if len(names) > 8 else ''}) is among the config's classes "
                    f"({', '.join(wanted[:8])}{', ...' if len(wanted) > 8 else ''}): set metainfo.classes to the "
                    "file's categories")
    return None


def run_checked(cfg: Config, loaders: List[str], action: str) -> None:
    """Build the runner and run ``action`` ('train' or 'test'); a dataset that came
    out empty because of mismatched classes becomes one line."""
    try:
        getattr(build_runner(cfg), action)()
    except ValueError as exc:
        why = explain_empty_coco(cfg, loaders) if "need at least one array to concatenate" in str(exc) else None
        if why is None:
            raise
        raise LaunchError(why) from None


def check_gpu_ops() -> None:
    """On a GPU machine, mmcv's nms / roi_align must run there before a model is
    built: a CPU-only mmcv would otherwise stop Mask R-CNN at its first RPN."""
    if not torch.cuda.is_available():
        return
    problems = mmcv_ops_problems([f"cuda:{torch.cuda.current_device()}"])
    if problems:
        raise LaunchError(problems[0])


def build_runner(cfg: Config):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    check_gpu_ops()

    import backbones.openmmlab  # noqa: F401  (registers the suite's backbone, hooks and runner)
    return RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)


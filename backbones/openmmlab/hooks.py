"""Early / late dropout while fine-tuning: the drop schedule as an mmengine Hook.

    custom_hooks = [dict(type='DropScheduleHook', drop_mode='early', drop_schedule='linear', cutoff=4)]

The peak rates are the backbone's own ``dropout`` / ``drop_path`` (one place to
set them); the hook moves the rates on the backbone's sites every iteration with
the drop core's schedule. ``cutoff`` is counted in the train loop's unit: epochs
for an epoch-based loop (mmdet's 1x/3x), iterations for an iteration-based loop
(mmseg's 160k). The rates in use are logged as ``dropout`` / ``drop_path``.
"""
from __future__ import annotations

import platform

import mmengine
import timm
import torch
from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop

from records import mark_finished, record_validation, write_run_info, write_test_metrics

from ..checkpoint import provenance
from ..drop_schedule import DropPlan


def _scalars(metrics: dict) -> dict:
    """Plain floats of the scalar metrics (evaluators return numpy / torch scalars too)."""
    out = {}
    for k, v in (metrics or {}).items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):  # per-class tables and the like
            continue
    return out


# mmdet's CocoMetric returns {} instead of AP when no image has a detection above
# test_cfg's score_thr (a barely trained head): the record says so.
NO_METRICS = ("the evaluator returned no metrics (mmdet's CocoMetric does so when no image has a prediction "
              "above the model's test_cfg score_thr)")


def _metrics_fields(metrics: dict) -> dict:
    scalars = _scalars(metrics)
    return {"metrics": scalars} if scalars else {"metrics": {}, "note": NO_METRICS}


__all__ = ["DropScheduleHook"]


@HOOKS.register_module()
class DropScheduleHook(Hook):
    priority = "NORMAL"

    def __init__(self, drop_mode: str = "standard", drop_schedule: str = "constant", cutoff: float = 0):
        self.drop_mode, self.drop_schedule, self.cutoff = drop_mode, drop_schedule, cutoff
        self.plan = None
        self.sites = None

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        backbone = getattr(model, "backbone", None)
        if backbone is None or not hasattr(backbone, "drop_sites"):
            raise TypeError("DropScheduleHook needs model.backbone to be a TimmDropBackbone "
                            f"(got {type(backbone).__name__})")
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            epochs, iters_per_epoch, cutoff_epoch = loop.max_epochs, len(loop.dataloader), self.cutoff
        else:  # iteration-based: one "epoch" spanning all iterations
            epochs, iters_per_epoch = 1, loop.max_iters
            if self.cutoff > loop.max_iters:
                raise ValueError(f"DropScheduleHook: cutoff={self.cutoff} iterations is past the end of "
                                 f"training (max_iters={loop.max_iters})")
            cutoff_epoch = self.cutoff / loop.max_iters
        self.plan = DropPlan.build(dropout=backbone.dropout, drop_path=backbone.drop_path,
                                   drop_mode=self.drop_mode, drop_schedule=self.drop_schedule,
                                   cutoff_epoch=cutoff_epoch, epochs=epochs, iters_per_epoch=iters_per_epoch)
        self.sites = backbone.drop_sites
        unit = "epochs" if isinstance(loop, EpochBasedTrainLoop) else "iterations"
        runner.logger.info(f"DropScheduleHook: {self.drop_mode}-{self.drop_schedule}, cutoff {self.cutoff} {unit}, "
                           f"peak dropout {backbone.dropout}, drop_path {backbone.drop_path}")

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        dropout, drop_path = self.plan(runner.iter)
        self.sites.apply(dropout, drop_path)
        runner.message_hub.update_scalar("train/dropout", dropout)
        runner.message_hub.update_scalar("train/drop_path", drop_path)


@HOOKS.register_module()
class RunRecordHook(Hook):
    """The record every detection / segmentation run leaves in its work_dir (read
    by the comparison tools):

    * ``run.json``: kind = task (mmdet / mmseg), config file, backbone arch, start
      checkpoint (path, sha256 and the pretraining method from its ``meta``),
      the fine-tuning drop schedule, seeds (``randomness_seed``: the configured
      one), data root, recipe (train_cfg, optimizer, batch size), world size, versions;
    * ``metrics_val.jsonl``: one line per validation: ``epoch, iter, metrics``;
    * ``metrics.json``: the last validation's metrics (the final ones after a
      finished run), with ``epoch``, ``iter`` and ``finished`` (once finished also
      ``pretrain_sha256``, as classification runs record it);
    * ``metrics_test.json``: the metrics of ``tools/test.py``;

    when the evaluator returned nothing, ``metrics`` is empty and ``note`` says why.

    mmengine itself writes the effective config (``<work_dir>/<config>.py``) and
    the per-iteration logs (``<work_dir>/<timestamp>/vis_data/scalars.json``).
    ``DropTransferRunner`` adds this hook to every run.
    """

    priority = "VERY_LOW"

    def before_train(self, runner) -> None:
        if not is_main_process():
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        backbone = getattr(model, "backbone", None)
        init = getattr(backbone, "init_cfg", None) or {}
        start = None
        if isinstance(init, dict) and init.get("type") == "Pretrained":
            start = getattr(backbone, "pretrained_provenance", None) or provenance(init["checkpoint"])
        drop = next((h for h in runner.hooks if isinstance(h, DropScheduleHook)), None)
        fine_tune_drop = drop.plan.describe() if drop is not None and drop.plan is not None else (
            f"standard at the backbone's rates (dropout {getattr(backbone, 'dropout', 0)}, "
            f"drop_path {getattr(backbone, 'drop_path', 0)})")
        record = {
            # as in every run.json of the suite (pretrain, cls_finetune, mmdet, mmseg: mmengine's default_scope);
            # records written before 2026-12 also say it as "task", which records still reads
            "kind": runner.cfg.get("default_scope"),
            "config": runner.cfg.filename,
            "work_dir": runner.work_dir, "backbone": getattr(backbone, "arch", type(backbone).__name__),
            "start_checkpoint": start, "fine_tune_drop": fine_tune_drop,
            "load_from": runner.cfg.get("load_from"), "resume": bool(runner.cfg.get("resume")),
            "world_size": get_world_size(), "seed": runner.seed,
            # the configured seed (--cfg-options randomness.seed=K; None: mmengine drew "seed"): pairs runs
            "randomness_seed": (runner.cfg.get("randomness") or {}).get("seed"),
            "data_root": ((runner.cfg.get("train_dataloader") or {}).get("dataset") or {}).get("data_root"),
            # what makes two runs of one config comparable besides the checkpoint (records fingerprints it)
            "recipe": {"train_cfg": runner.cfg.get("train_cfg"),
                       "optimizer": (runner.cfg.get("optim_wrapper") or {}).get("optimizer"),
                       "batch_size": (runner.cfg.get("train_dataloader") or {}).get("batch_size")},
            "versions": {"torch": torch.__version__, "timm": timm.__version__, "mmengine": mmengine.__version__,
                         "python": platform.python_version()},
        }
        write_run_info(runner.work_dir, record)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write(runner, metrics or {}, finished=False)

    def after_test_epoch(self, runner, metrics=None) -> None:
        if is_main_process():
            fields = _metrics_fields(metrics)  # flat: the metrics, or only the note
            write_test_metrics(runner.work_dir, fields["metrics"] or {"note": fields["note"]})

    def after_train(self, runner) -> None:
        if is_main_process():
            mark_finished(runner.work_dir, runner.iter >= runner.max_iters)

    def _write(self, runner, metrics: dict, finished: bool) -> None:
        if not is_main_process():
            return
        record_validation(runner.work_dir, {"epoch": runner.epoch, "iter": runner.iter, **_metrics_fields(metrics),
                                            "finished": finished})

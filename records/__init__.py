"""Run records: the one place that knows the files a run leaves and their keys.

Every writer (``training/run.py`` for pretraining and classification runs,
``backbones/openmmlab/hooks.py`` ``RunRecordHook`` for mmdet/mmseg runs) and every
reader (``tools/compare.py``, the suite runner, ``cls_finetune/sweep.py``,
``tools/analyze_gradients.py``) goes through this package. Pure Python: no torch.

Files of a run dir (names in ``common.names``)
---------------------------------------------
=====================  ==============================================================
``run.json``           what the run is, written when it starts (every kind)
``metrics.json``       final numbers; its ``finished`` decides whether the run ended
``config.yaml``        training runs: the effective flags (recipe, seed)
``log.jsonl``          training runs: per epoch ``epoch, train_loss, val_top1, ...``
``log_iter.jsonl``     training runs: per update ``step, loss, lr, dropout, drop_path, ...``
``diagnostics.jsonl``  pretraining with ``--diag_every``: ``epoch, gde, gdv, grad_norm, model_distance``
``metrics_val.jsonl``  det/seg: one line per validation ``epoch, iter, metrics``
``metrics_test.json``  det/seg: the metrics of ``tools/test.py``
``metrics_eval.json``  training runs' ``--eval`` (never read as a run)
=====================  ==============================================================

What identifies a run (``RunRecord``; read from old and new records alike)
---------------------------------------------------------------------------
* ``kind``: ``pretrain`` | ``cls_finetune`` | ``mmdet`` | ``mmseg`` (run.json
  ``kind``; older det/seg records: ``task``). compare calls them pretraining,
  classification, detection, segmentation.
* ``dataset``: pretraining: the name of ``data_path`` (``imagenet``);
  classification: ``dataset``; ``coco`` (mmdet), ``ade20k`` (mmseg).
* ``recipe``: training runs: ``"<epochs> ep"`` (classification:
  ``"<mode>, <epochs> ep"``, mode ``finetune``/``linear_probe``) identified by a
  fingerprint of every flag in ``config.yaml`` except architecture, drop
  schedule, seed, paths and run control; det/seg: the config file name without
  its pretraining variant (``mask-rcnn_vit-tiny_fpn_1x_coco``) and a fingerprint
  of ``run.json`` ``recipe`` (train_cfg, optimizer, batch size) when recorded.
* ``arch``: the model with its ``model_kwargs``; for transfer runs the one
  recorded in the start checkpoint's ``meta`` (``start_checkpoint.pretrain``).
* ``method``: the pretraining method (``DropPlan.describe()``, e.g. ``no
  dropout``, ``early-linear dropout 0.1 until epoch 50``): a pretraining run's
  run.json ``method``; a transfer run's ``start_checkpoint.pretrain.method``,
  with the checkpoint's ``sha256`` and path, the pretraining ``seed`` and
  ``epochs`` (``pretrain_recipe``).
* ``finetune_method``: transfer runs: the drop schedule while fine-tuning
  (classification run.json ``method``, det/seg ``fine_tune_drop``).
* ``seed``: training runs: ``config.yaml`` ``seed``; det/seg: run.json
  ``randomness_seed`` (mmengine's ``randomness.seed``, None when not
  configured; older records: ``seed``, the one mmengine drew).
* ``paper_top1``: pretraining presets' ``--paper_top1`` (run.json).

The finished rule (``is_finished``)
-----------------------------------
``metrics.json`` exists and says so: det/seg ``finished: true`` (set after the
last iteration), training runs write it last (``finished: true``; older
records: it has ``final``). A ``metrics.json`` that exists but cannot be read
counts as finished so that no runner overwrites it; ``started_from`` returns
None for it and ``read_run`` raises ``RecordError`` naming it.

Status of a read run: ``finished``, ``unfinished`` (no final metrics: crashed,
killed or running), ``no metrics`` (finished, the evaluator returned nothing;
``note`` says why), ``stale`` (set by ``mark_stale``: the start checkpoint at
its recorded path has another sha256 now), ``unreadable`` (``discover(...,
skip_unreadable=True)``).

Primary metrics (``records.metrics``), in points
------------------------------------------------
pretraining: ``top1``, ``top5`` (``final``), ``train_loss``
(``train_loss_last_epoch``, lower is better); classification: ``top1``,
``top5``; detection: ``box_AP``, ``box_AP50``, ``box_AP75``, ``mask_AP``,
``mask_AP50``, ``mask_AP75`` (``coco/bbox_mAP``... x 100); segmentation:
``mIoU``, ``mAcc``, ``aAcc``. Headline (compare's default): top-1 and train
loss, top-1, box and mask AP, mIoU.

All JSON is written atomically (``common.files.write_json``: a temporary file in
the same folder, then ``os.replace``).
"""
from common.files import RecordError, append_jsonl, read_json, read_jsonl, write_json
from common.names import (
    CONFIG,
    DIAGNOSTICS,
    EPOCH_LOG,
    EVAL_CONFIG,
    EVAL_METRICS,
    ITER_LOG,
    METRICS,
    RUN_INFO,
    TEST_METRICS,
    VAL_METRICS,
)

from . import files, metrics  # noqa: F401  (records.files: the module the writers have imported)
from .metrics import KINDS, TASK_NAMES, Metric, extract_metrics, headline_metrics, metric_by_id, metrics_of
from .runs import (
    FINISHED,
    NO_METRICS,
    STALE,
    UNFINISHED,
    UNREADABLE,
    RunRecord,
    discover,
    is_finished,
    mark_finished,
    mark_stale,
    read_run,
    read_run_info,
    record_validation,
    run_label,
    started_from,
    write_eval_metrics,
    write_final_metrics,
    write_run_info,
    write_test_metrics,
)

# File names (common.names) are re-exported above for writers that pass paths: records.METRICS, ...
METRIC_RULES = metrics.METRICS  # the primary-metric rule of every task

__all__ = [
    "RUN_INFO", "METRICS", "EVAL_METRICS", "VAL_METRICS", "TEST_METRICS", "CONFIG", "EVAL_CONFIG", "EPOCH_LOG",
    "ITER_LOG", "DIAGNOSTICS", "RecordError", "write_json", "append_jsonl", "read_json", "read_jsonl",
    "KINDS", "TASK_NAMES", "Metric", "METRIC_RULES", "metrics_of", "headline_metrics", "metric_by_id",
    "extract_metrics", "RunRecord", "FINISHED", "UNFINISHED", "NO_METRICS", "STALE", "UNREADABLE", "read_run",
    "read_run_info", "discover", "is_finished", "started_from", "mark_stale", "run_label", "write_run_info",
    "write_final_metrics", "write_eval_metrics", "record_validation", "write_test_metrics", "mark_finished",
]

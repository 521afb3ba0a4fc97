"""Every file name of a run dir, spelled once (``records/__init__.py`` documents
what each holds and its keys)."""

RUN_INFO = "run.json"              # what the run is (written when it starts)
METRICS = "metrics.json"           # final numbers (training runs: written last; det/seg: per validation)
EVAL_METRICS = "metrics_eval.json"  # --eval of a training run
VAL_METRICS = "metrics_val.jsonl"  # det/seg: one line per validation
TEST_METRICS = "metrics_test.json"  # det/seg: tools/test.py
CONFIG = "config.yaml"             # training runs: the effective flags
EVAL_CONFIG = "config_eval.yaml"   # training runs' --eval: the flags it ran with
EPOCH_LOG = "log.jsonl"            # training runs: one line per epoch
ITER_LOG = "log_iter.jsonl"        # training runs: one line per update
DIAGNOSTICS = "diagnostics.jsonl"  # pretraining with --diag_every
MM_SCALARS = "vis_data/scalars.json"  # det/seg: mmengine's per-iteration log, under <work_dir>/<timestamp>/

CHECKPOINT_LAST = "checkpoint-last.pth"  # training runs: the exact-resume checkpoint
CHECKPOINT_BEST = "checkpoint-best.pth"  # ... of the best validation top-1 so far
WEIGHTS = "weights.pth"            # training runs: the exported weights with their meta
WEIGHTS_EMA = "weights_ema.pth"    # ... of the EMA model (--model_ema)
INIT_WEIGHTS = "init_weights.pth"  # pretraining with --diag_every: the weights at step 0 (model_distance)
TENSORBOARD = "tensorboard"        # training runs: TensorBoard's event files (a dir)

__all__ = ["RUN_INFO", "METRICS", "EVAL_METRICS", "VAL_METRICS", "TEST_METRICS", "CONFIG", "EVAL_CONFIG",
           "EPOCH_LOG", "ITER_LOG", "DIAGNOSTICS", "MM_SCALARS", "CHECKPOINT_LAST", "CHECKPOINT_BEST", "WEIGHTS",
           "WEIGHTS_EMA", "INIT_WEIGHTS", "TENSORBOARD"]

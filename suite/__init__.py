"""The suite runner: one suite file describes the paper's whole matrix (pretraining
presets per architecture, then detection, segmentation and classification transfer
from each, over seeds), and ``python -m suite run|status SUITE.yaml`` runs it locally
or on Slurm (submitit) and says where every job stands.

For other tools (compare, the demo) the matrix is ``load_suite(path).jobs``: each
``Job`` has its ``key`` (also its run dir under ``output_root``), ``stage``
(pretrain/det/seg/cls), ``run_dir``, ``pretrain`` (the pretraining run it starts
from), ``arch``, ``task``, ``seed``, ``checkpoint`` and ``depends_on``. The runner
builds command lines for the entry points (``python -m pretrain``,
``tools/train.py``, ``python -m cls_finetune``) and runs them as subprocesses; it
imports no training code.
"""
from .spec import REPO, Job, Resources, Suite, SuiteError, load_suite, select
from .state import STATES, Status, statuses

__all__ = ["REPO", "Job", "Resources", "Suite", "SuiteError", "load_suite", "select", "STATES", "Status",
           "statuses"]

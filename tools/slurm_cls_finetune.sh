#!/usr/bin/env bash
# Classification transfer under Slurm, one task per GPU.
#
#   GPUS=8 bash tools/slurm_cls_finetune.sh PARTITION JOB_NAME [cls_finetune flags...]
#   GPUS_PER_NODE=0 CPUS_PER_TASK=2 bash tools/slurm_cls_finetune.sh debug cls --config cls_configs/demo_cpu.yaml ...
#
# GPUS_PER_NODE=0: no --gres, CPU tasks only, GPUS of them (default 1); see tools/slurm_module.sh.
exec bash "$(dirname "${BASH_SOURCE[0]}")/slurm_module.sh" cls_finetune "$@"

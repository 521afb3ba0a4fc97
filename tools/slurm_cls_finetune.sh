#!/usr/bin/env bash
# Classification transfer under Slurm, one task per GPU.
#
#   GPUS=8 bash tools/slurm_cls_finetune.sh PARTITION JOB_NAME [cls_finetune flags...]
exec bash "$(dirname "${BASH_SOURCE[0]}")/slurm_module.sh" cls_finetune "$@"

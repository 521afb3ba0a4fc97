#!/usr/bin/env bash
# ImageNet pretraining under Slurm, one task per GPU.
#
#   GPUS=32 GPUS_PER_NODE=8 bash tools/slurm_pretrain.sh PARTITION JOB_NAME [pretrain flags...]
exec bash "$(dirname "${BASH_SOURCE[0]}")/slurm_module.sh" pretrain "$@"

#!/usr/bin/env bash
# ImageNet pretraining under Slurm, one task per GPU.
#
#   GPUS=32 GPUS_PER_NODE=8 bash tools/slurm_pretrain.sh PARTITION JOB_NAME [pretrain flags...]
#   GPUS_PER_NODE=0 CPUS_PER_TASK=2 bash tools/slurm_pretrain.sh debug demo --config pretrain_configs/demo_cpu.yaml ...
#
# GPUS_PER_NODE=0: no --gres, CPU tasks only, GPUS of them (default 1); see tools/slurm_module.sh.
exec bash "$(dirname "${BASH_SOURCE[0]}")/slurm_module.sh" pretrain "$@"

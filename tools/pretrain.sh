#!/usr/bin/env bash
# ImageNet pretraining on one machine (or one node of many) with torchrun.
#
#   bash tools/pretrain.sh NPROC [pretrain flags...]
#   bash tools/pretrain.sh 8 --config pretrain_configs/vit_tiny_early_dropout.yaml --data_path /data/imagenet
#   bash tools/pretrain.sh 1 --config pretrain_configs/demo_cpu.yaml          # CPU: gloo, one process
#
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in mmdet's dist_train.sh.
exec bash "$(dirname "${BASH_SOURCE[0]}")/torchrun_module.sh" pretrain "$@"

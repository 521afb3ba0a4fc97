#!/usr/bin/env bash
# Classification transfer on one machine (or one node of many) with torchrun.
#
#   bash tools/cls_finetune.sh NPROC [cls_finetune flags...]
#   bash tools/cls_finetune.sh 8 --config cls_configs/_base_/finetune.yaml cls_configs/datasets/cifar100.yaml \
#       --finetune output/pretrain/vit_tiny_early_dropout/weights.pth --output_dir output/cls/my_run
#
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in mmdet's dist_train.sh.
exec bash "$(dirname "${BASH_SOURCE[0]}")/torchrun_module.sh" cls_finetune "$@"

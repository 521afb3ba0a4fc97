#!/usr/bin/env bash
# ImageNet pretraining on one machine (or one node of many) with torchrun.
#
#   bash tools/pretrain.sh NPROC [pretrain flags...]
#   bash tools/pretrain.sh 8 --config pretrain_configs/vit_tiny_early_dropout.yaml --data_path /data/imagenet
#   bash tools/pretrain.sh 1 --config pretrain_configs/demo_cpu.yaml          # CPU: gloo, one process
#
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in mmdet's dist_train.sh.
set -euo pipefail
if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: bash tools/pretrain.sh NPROC [pretrain flags...]   (see python -m pretrain --help)" >&2
  exit 2
fi
NPROC=$1; shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${DT_VENV:-$ROOT/.venv}/bin/python"
[[ -x "$PY" ]] || PY=python
exec "$PY" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" -m pretrain "$@"

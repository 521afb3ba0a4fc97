#!/usr/bin/env bash
# torchrun for one of the suite's modules: the launcher behind tools/pretrain.sh
# and tools/cls_finetune.sh.
#
#   bash tools/torchrun_module.sh MODULE NPROC [flags...]
#
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in mmdet's dist_train.sh.
set -euo pipefail
MODULE=${1:?usage: bash tools/torchrun_module.sh MODULE NPROC [flags...]}; shift
if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: bash tools/${MODULE}.sh NPROC [flags...]   (see python -m ${MODULE} --help)" >&2
  exit 2
fi
NPROC=$1; shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${DT_VENV:-$ROOT/.venv}/bin/python"
[[ -x "$PY" ]] || PY=python
exec "$PY" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" -m "$MODULE" "$@"

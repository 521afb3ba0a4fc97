#!/usr/bin/env bash
# Detection / segmentation fine-tuning with torchrun (mmdet's dist_train.sh conventions).
#   bash tools/dist_train.sh CONFIG NGPUS --pretrained PATH [--resume] [--amp] [--work-dir DIR] [--cfg-options k=v ...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT. No GPU: NGPUS CPU processes (gloo).
set -euo pipefail
if [[ $# -lt 2 ]]; then echo "usage: bash tools/dist_train.sh CONFIG NGPUS [train.py flags...]" >&2; exit 2; fi
CONFIG=$1; NGPUS=$2; shift 2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${DT_VENV:-$ROOT/.venv}/bin/python"; [[ -x "$PY" ]] || PY=python
# On a GPU machine check mmcv's ops on the GPU first: a CPU-only mmcv would otherwise stop
# Mask R-CNN at its first RPN in every rank. check_env.py prints the fix in one line.
if compgen -G "/dev/nvidia[0-9]*" >/dev/null; then "$PY" "$ROOT/tools/check_env.py" --quiet || exit 1; fi
exec "$PY" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" --nproc_per_node="$NGPUS" \
  "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"

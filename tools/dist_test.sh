#!/usr/bin/env bash
# Evaluate a fine-tuned checkpoint with torchrun.
#   bash tools/dist_test.sh CONFIG CHECKPOINT NGPUS [test.py flags...]
set -euo pipefail
if [[ $# -lt 3 ]]; then echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT NGPUS [test.py flags...]" >&2; exit 2; fi
CONFIG=$1; CHECKPOINT=$2; NGPUS=$3; shift 3
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${DT_VENV:-$ROOT/.venv}/bin/python"; [[ -x "$PY" ]] || PY=python
# On a GPU machine check mmcv's ops on the GPU first: a CPU-only mmcv would otherwise stop
# Mask R-CNN at its first RPN in every rank. check_env.py prints the fix in one line.
if compgen -G "/dev/nvidia[0-9]*" >/dev/null; then "$PY" "$ROOT/tools/check_env.py" --quiet || exit 1; fi
exec "$PY" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" --nproc_per_node="$NGPUS" \
  "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"

#!/usr/bin/env bash
# ImageNet pretraining under Slurm, one task per GPU (the convention of mmdet's slurm_train.sh).
#
#   GPUS=32 GPUS_PER_NODE=8 bash tools/slurm_pretrain.sh PARTITION JOB_NAME [pretrain flags...]
#
# Each task learns its rank from SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS
# (pretrain/distributed.py maps them to torchrun's RANK / LOCAL_RANK / WORLD_SIZE).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: GPUS=N bash tools/slurm_pretrain.sh PARTITION JOB_NAME [pretrain flags...]" >&2
  exit 2
fi
PARTITION=$1; JOB_NAME=$2; shift 2
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-10}
SRUN_ARGS=${SRUN_ARGS:-}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${DT_VENV:-$ROOT/.venv}/bin/python"
[[ -x "$PY" ]] || PY=python
export MASTER_PORT=${PORT:-29500}
# shellcheck disable=SC2086
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" \
  --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
  bash -c 'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1); exec "$0" -u -m pretrain "$@"' \
  "$PY" "$@"

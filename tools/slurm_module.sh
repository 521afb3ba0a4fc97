#!/usr/bin/env bash
# One of the suite's modules under Slurm, one task per GPU (the convention of
# mmdet's slurm_train.sh): the launcher behind tools/slurm_pretrain.sh and
# tools/slurm_cls_finetune.sh.
#
#   GPUS=32 GPUS_PER_NODE=8 bash tools/slurm_module.sh MODULE PARTITION JOB_NAME [flags...]
#
# Each task learns its rank from SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS
# (pretrain/distributed.py maps them to torchrun's RANK / LOCAL_RANK / WORLD_SIZE).
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: GPUS=N bash tools/slurm_${1:-<module>}.sh PARTITION JOB_NAME [flags...]" >&2
  exit 2
fi
MODULE=$1; PARTITION=$2; JOB_NAME=$3; shift 3
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
  bash -c 'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1); exec "$0" -u -m "$@"' \
  "$PY" "$MODULE" "$@"

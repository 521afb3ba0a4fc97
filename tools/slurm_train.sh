#!/usr/bin/env bash
# Detection / segmentation fine-tuning under Slurm, one task per GPU (mmdet's slurm_train.sh conventions).
#   GPUS=16 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py flags...]
# Without GPUs (a CPU partition, a cluster without GRES, tools/slurm_cluster.sh): GPUS_PER_NODE=0
# asks for no --gres and hides any GPU; it trains as one CPU task (GPUS=1, the default then),
# since mmengine's distributed setup needs CUDA:
#   GPUS_PER_NODE=0 CPUS_PER_TASK=2 bash tools/slurm_train.sh debug det CONFIG WORK_DIR
set -euo pipefail
if [[ $# -lt 4 ]]; then echo "usage: GPUS=N bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [flags...]" >&2; exit 2; fi
PARTITION=$1; JOB_NAME=$2; CONFIG=$3; WORK_DIR=$4; shift 4
GPUS_PER_NODE=${GPUS_PER_NODE:-8}; CPUS_PER_TASK=${CPUS_PER_TASK:-5}; SRUN_ARGS=${SRUN_ARGS:-}
if [[ "$GPUS_PER_NODE" == 0 ]]; then GPUS=${GPUS:-1}; else GPUS=${GPUS:-8}; fi
for v in GPUS GPUS_PER_NODE CPUS_PER_TASK; do
  [[ "${!v}" =~ ^[0-9]+$ && ( "${!v}" -gt 0 || $v == GPUS_PER_NODE ) ]] \
    || { echo "slurm_train.sh: $v must be a positive whole number (GPUS_PER_NODE=0: no GPUs), not '${!v}'" >&2; exit 2; }
done
if [[ "$GPUS_PER_NODE" == 0 ]]; then
  if [[ "$GPUS" != 1 ]]; then
    echo "slurm_train.sh: GPUS_PER_NODE=0 trains as one CPU task (mmengine's distributed setup needs CUDA), not GPUS=$GPUS" >&2
    exit 2
  fi
  # One process needs no process group: mmengine's slurm launcher would ask CUDA for a device.
  PLACE=(); LAUNCHER=none
  export CUDA_VISIBLE_DEVICES=""
else
  PLACE=(--gres=gpu:"$GPUS_PER_NODE" --ntasks-per-node="$GPUS_PER_NODE"); LAUNCHER=slurm
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${DT_VENV:-$ROOT/.venv}/bin/python"; [[ -x "$PY" ]] || PY=python
# shellcheck disable=SC2086
srun -p "$PARTITION" --job-name="$JOB_NAME" "${PLACE[@]}" --ntasks="$GPUS" \
  --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
  "$PY" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher "$LAUNCHER" "$@"

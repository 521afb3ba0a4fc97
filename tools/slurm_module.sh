#!/usr/bin/env bash
# One of the suite's modules under Slurm, one task per GPU (the convention of
# mmdet's slurm_train.sh): the launcher behind tools/slurm_pretrain.sh and
# tools/slurm_cls_finetune.sh.
#
#   GPUS=32 GPUS_PER_NODE=8 bash tools/slurm_module.sh MODULE PARTITION JOB_NAME [flags...]
#
# Without GPUs (a CPU partition, a cluster without GRES, tools/slurm_cluster.sh):
# GPUS_PER_NODE=0 asks for no --gres, hides any GPU from the tasks and makes GPUS
# the number of CPU tasks (default 1; several talk over gloo), each with CPUS_PER_TASK cores:
#   GPUS=1 GPUS_PER_NODE=0 CPUS_PER_TASK=2 bash tools/slurm_pretrain.sh debug pt --config ...
#
# Each task learns its rank from SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS
# (training/distributed.py maps them to torchrun's RANK / LOCAL_RANK / WORLD_SIZE).
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: GPUS=N bash tools/slurm_${1:-<module>}.sh PARTITION JOB_NAME [flags...]" >&2
  exit 2
fi
MODULE=$1; PARTITION=$2; JOB_NAME=$3; shift 3
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
if [[ "$GPUS_PER_NODE" == 0 ]]; then GPUS=${GPUS:-1}; else GPUS=${GPUS:-8}; fi
CPUS_PER_TASK=${CPUS_PER_TASK:-10}
SRUN_ARGS=${SRUN_ARGS:-}
for v in GPUS GPUS_PER_NODE CPUS_PER_TASK; do
  [[ "${!v}" =~ ^[0-9]+$ && ( "${!v}" -gt 0 || $v == GPUS_PER_NODE ) ]] \
    || { echo "slurm_${MODULE}.sh: $v must be a positive whole number (GPUS_PER_NODE=0: no GPUs), not '${!v}'" >&2; exit 2; }
done
if [[ "$GPUS_PER_NODE" == 0 ]]; then
  PLACE=()
  export CUDA_VISIBLE_DEVICES=""  # zero GPUs per task, even on a GPU node
else
  PLACE=(--gres=gpu:"$GPUS_PER_NODE" --ntasks-per-node="$GPUS_PER_NODE")
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${DT_VENV:-$ROOT/.venv}/bin/python"
[[ -x "$PY" ]] || PY=python
export MASTER_PORT=${PORT:-29500}
# shellcheck disable=SC2086
srun -p "$PARTITION" --job-name="$JOB_NAME" "${PLACE[@]}" --ntasks="$GPUS" \
  --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
  bash -c 'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1); exec "$0" -u -m "$@"' \
  "$PY" "$MODULE" "$@"

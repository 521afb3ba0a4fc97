#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
# tests/test_slurm.py runs the Slurm launchers on a private one-node cluster
# (tools/slurm_cluster.sh): start it when none runs and stop it at exit, but only
# one this run started. Where it cannot start (exit 3: not root, no apt, no
# packages) the tests run anyway and the Slurm ones skip with the reason.
if [[ -z "${SLURM_CONF:-}" ]]; then
  if bash tools/slurm_cluster.sh status >/dev/null 2>&1; then
    eval "$(bash tools/slurm_cluster.sh env)"
  else
    slurm_rc=0
    slurm_out=$(bash tools/slurm_cluster.sh start 2>&1) || slurm_rc=$?
    echo "$slurm_out"
    if [[ $slurm_rc == 0 ]]; then
      trap 'bash tools/slurm_cluster.sh stop' EXIT
      export SLURM_CONF="$(tail -n1 <<<"$slurm_out" | sed 's/^export SLURM_CONF=//')"
    elif [[ $slurm_rc == 3 ]]; then
      export DT_SLURM_UNAVAILABLE="$(tail -n1 <<<"$slurm_out")"
    else
      exit "$slurm_rc"
    fi
  fi
fi
# Not exec: the trap above stops the cluster after pytest; pytest's exit code is ours.
rc=0
"${DT_VENV:-$ROOT/.venv}/bin/python" -m pytest -q "$@" || rc=$?
exit "$rc"

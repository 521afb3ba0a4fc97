#!/usr/bin/env bash
# The GPU acceptance run (tools/gpu_check.py says what it does, step by step, with budgets):
#   bash tools/gpu_check.sh OUT_DIR [--dry-run] [--wheelhouse DIR]
# PYTHON: the interpreter that already holds a CUDA torch (default python3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: bash tools/gpu_check.sh OUT_DIR [--dry-run] [--wheelhouse DIR]" >&2
  exit 2
fi
exec "${PYTHON:-python3}" "$ROOT/tools/gpu_check.py" "$@"

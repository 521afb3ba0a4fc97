#!/usr/bin/env bash
# Set up (idempotent) and run the end-to-end demo on generated data, on the CPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "${DT_VENV:-$ROOT/.venv}/bin/python" tools/demo.py "$@"

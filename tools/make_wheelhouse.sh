#!/usr/bin/env bash
# Write every wheel the suite needs beyond torch/torchvision for a target machine
# (Python version, platform), plus the mmcv sdist, into one folder for installs
# with no network (DT_WHEELHOUSE=DIR bash tools/setup_env.sh). Run it where pip
# reaches the package index; it prints each file and the total size.
#
#   bash tools/make_wheelhouse.sh DIR [--python 3.12] [--platform manylinux_2_28_x86_64]
#                                     [--have FILE | --have-python PY] [--max-mib 60]
#
# --have: the target's `python3 -m pip list --format=freeze` (what it already
# has is left out); tools/wheelhouse_targets/ holds the machines we know, e.g.
#   bash tools/make_wheelhouse.sh wheelhouse --python 3.12 \
#       --have tools/wheelhouse_targets/nvidia-h200-cp312.txt
# Defaults: this machine's Python and platform, nothing had beyond torch.
# The resolution rules are in tools/wheelhouse.py. PYTHON: the interpreter that
# runs pip here (default python3; any version, it downloads for the target).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: bash tools/make_wheelhouse.sh DIR [--python X.Y] [--platform TAG] [--have FILE | --have-python PY]" >&2
  exit 2
fi
exec "${PYTHON:-python3}" "$ROOT/tools/wheelhouse.py" build "$@"

#!/usr/bin/env bash
# One idempotent setup for the whole suite: a virtual environment with torch,
# timm, mmengine, mmcv (built from source with its C++ ops), mmdet, mmseg and
# this repository installed in editable mode.
#
#   bash tools/setup_env.sh            # creates/updates .venv, prints what it does
#
# Environment knobs:
#   DT_VENV   where the virtual environment lives       (default: <repo>/.venv)
#   DT_CACHE  cache for the built mmcv wheel            (default: ~/.cache/dropout-transfer)
#   MAX_JOBS  parallel compile jobs for mmcv            (default: number of cores)
#
# A second run with everything in place only checks the stamp and the imports.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DT_VENV:-$ROOT/.venv}"
CACHE="${DT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dropout-transfer}"
PY_BASE="${PYTHON:-python3}"
MMCV_VERSION=2.1.0

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# The stamp records what this venv was built from; any change re-runs the installs.
# The package list is in it because the editable install maps packages that existed when it ran.
stamp_of() {
  { cat "$ROOT/requirements.txt" "$ROOT/requirements-build.txt" "$ROOT/pyproject.toml" \
        "$ROOT/tools/setup_env.sh"; (cd "$ROOT" && ls -d */__init__.py); } | sha256sum | cut -d' ' -f1
}
STAMP_FILE="$VENV/.dropout-transfer-stamp"
WANT_STAMP="$(stamp_of)"

if [[ -x "$VENV/bin/python" && -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$WANT_STAMP" ]]; then
  if "$VENV/bin/python" "$ROOT/tools/check_env.py" --quiet; then
    say "environment up to date: $VENV"
    exit 0
  fi
  say "stamp matches but the environment check failed; reinstalling"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating virtual environment $VENV"
  "$PY_BASE" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

# mmcv's setup.py and mmengine 0.10.7 (Config's `mmdet::` / `mmseg::` bases) import
# pkg_resources, which setuptools>=70 no longer ships. torch 2.14's metadata asks for
# setuptools>=77 but uses it only to compile C++ extensions (mmcv's build works with
# 69), so the venv keeps setuptools<70, installed without dependency resolution.
pin_setuptools() {
  "${PIP[@]}" install -q --no-deps -r "$ROOT/requirements-build.txt" 2>&1 \
    | grep -v "dependency resolver does not currently\|requires setuptools>=" || true
}

say "installing torch and build tools (torch comes from local disk when available)"
"${PIP[@]}" install -q wheel ninja \
  "$(grep -E '^torch==' "$ROOT/requirements.txt")" \
  "$(grep -E '^torchvision==' "$ROOT/requirements.txt")"
pin_setuptools

# ---------------------------------------------------------------- mmcv ------
# OpenMMLab ships no mmcv wheels on PyPI for this torch, so we build one from the
# sdist once and keep it in a cache keyed by mmcv, torch and Python versions.
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PY_TAG-$(uname -m)"
mkdir -p "$WHEEL_DIR"
MMCV_WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"

have_mmcv_ops() { "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" >/dev/null 2>&1; }

if have_mmcv_ops; then
  say "mmcv $MMCV_VERSION with ops already installed"
else
  if [[ -z "$MMCV_WHEEL" ]]; then
    jobs="${MAX_JOBS:-$(nproc)}"
    say "building mmcv $MMCV_VERSION with C++ ops from source (no cached wheel in $WHEEL_DIR)"
    say "this happens once per machine and takes 10 to 30 min on 2 cores; progress below"
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation \
      -d "$build" "mmcv==$MMCV_VERSION"
    tar -xzf "$build/mmcv-$MMCV_VERSION.tar.gz" -C "$build"
    src="$build/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers require C++20; mmcv's setup.py pins c++14/17.
    sed -i -e 's/c++14/c++20/g' -e 's/c++17/c++20/g' "$src/setup.py"
    log="$WHEEL_DIR/build.log"
    # Only the CPU ops: no GPU here, and a CUDA build would need a matching toolkit.
    set +e
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$jobs" \
      "${PIP[@]}" wheel -v --no-build-isolation --no-deps "$src" -w "$WHEEL_DIR" 2>&1 \
      | tee "$log" | grep --line-buffered -oE '^\s*\[[0-9]+/[0-9]+\]' \
      | while read -r step; do say "mmcv compile $step  ($(date +%H:%M:%S))"; done  # (mawk would buffer)
    status="${PIPESTATUS[0]}"
    set -e
    MMCV_WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
    [[ "$status" == 0 && -n "$MMCV_WHEEL" ]] || die "mmcv build failed; full log: $log"
    say "built $MMCV_WHEEL"
  else
    say "reusing cached mmcv wheel $MMCV_WHEEL"
  fi
  "${PIP[@]}" install -q "$MMCV_WHEEL"
fi

say "installing the pinned stack (requirements.txt)"
"${PIP[@]}" install -q -r "$ROOT/requirements.txt"
say "installing this repository in editable mode"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"
pin_setuptools  # requirements.txt may have pulled a newer one back in for torch

say "checking the stack"
"$PY" "$ROOT/tools/check_env.py"
echo "$WANT_STAMP" > "$STAMP_FILE"
say "done: activate with 'source $VENV/bin/activate'"

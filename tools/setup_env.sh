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
#   DT_MMCV_CUDA=1 with TORCH_CUDA_ARCH_LIST=9.0 (say)  build mmcv's CUDA ops without a GPU
#
# mmcv gets CUDA ops when the venv's torch is a CUDA build and torch sees a GPU
# (or DT_MMCV_CUDA=1); tools/mmcv_build_plan.py decides toolkit, archs and cache key.
#
# A second run with everything in place only checks the stamp and the imports.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DT_VENV:-$ROOT/.venv}"
CACHE="${DT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dropout-transfer}"
PY_BASE="${PYTHON:-python3}"
MMCV_VERSION=2.1.0
PLAN_TOOL="$ROOT/tools/mmcv_build_plan.py"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# The stamp records what this venv was built from; any change re-runs the installs.
# The package list is in it because the editable install maps packages that existed when it ran.
# An explicit CUDA request is in it too: it must not be answered by a CPU venv's fast path.
stamp_of() {
  { cat "$ROOT/requirements.txt" "$ROOT/requirements-build.txt" "$ROOT/pyproject.toml" \
        "$ROOT/tools/setup_env.sh" "$PLAN_TOOL"; (cd "$ROOT" && ls -d */__init__.py)
    if [[ -n "${DT_MMCV_CUDA:-}" ]]; then echo "DT_MMCV_CUDA=$DT_MMCV_CUDA ${TORCH_CUDA_ARCH_LIST:-}"; fi
  } | sha256sum | cut -d' ' -f1
}
# Bad knobs (e.g. DT_MMCV_CUDA=1 without an arch list and no GPU) fail here, before any install.
"$PY_BASE" "$PLAN_TOOL" --precheck
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
# sdist once and keep it in a cache keyed by mmcv, torch and Python versions (CUDA
# builds add the CUDA version and arch list). The plan exits 2 on bad knobs.
PLAN="$("$PY" "$PLAN_TOOL" --shell --mmcv-version "$MMCV_VERSION")"
eval "$PLAN"
say "$MMCV_PLAN_TEXT"
WHEEL_DIR="$CACHE/wheels/$MMCV_WHEEL_KEY"
mkdir -p "$WHEEL_DIR"
MMCV_WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
# Which cached wheel the venv's mmcv came from; a venv from before this mark has a CPU build.
MMCV_MARK="$VENV/.dropout-transfer-mmcv"

have_mmcv_ops() {
  "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" >/dev/null 2>&1 || return 1
  if [[ -f "$MMCV_MARK" ]]; then [[ "$(cat "$MMCV_MARK")" == "$MMCV_WHEEL_KEY" ]]; else [[ "$MMCV_MODE" == cpu ]]; fi
}

if have_mmcv_ops; then
  say "mmcv $MMCV_VERSION with ops already installed"
else
  if [[ -z "$MMCV_WHEEL" ]]; then
    jobs="${MAX_JOBS:-$(nproc)}"
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    if [[ "$MMCV_MODE" == cuda ]]; then
      say "building mmcv $MMCV_VERSION with C++ and CUDA ops from source (no cached wheel in $WHEEL_DIR)"
      say "this happens once per machine, $MMCV_ESTIMATE; progress below"
      toolkit="$MMCV_CUDA_HOME"
      if [[ "$MMCV_TOOLKIT" == wheels ]]; then
        say "installing nvcc from pip: $MMCV_TOOLKIT_SPEC (torch's CUDA is $MMCV_CUDA_VERSION)"
        "${PIP[@]}" install -q "$MMCV_TOOLKIT_SPEC"
        toolkit="$MMCV_TOOLKIT_ROOT"
        [[ -x "$toolkit/bin/nvcc" ]] || die "$MMCV_TOOLKIT_SPEC installed no $toolkit/bin/nvcc"
      fi
      # The toolkit, or symlinks over it plus the CUDA library headers torch includes (see the plan tool).
      cuda_home="$("$PY" "$PLAN_TOOL" --compose-cuda-home "$build/cuda_home" --toolkit-dir "$toolkit")"
      say "nvcc: $("$cuda_home/bin/nvcc" --version | grep -o 'V[0-9][0-9.]*' | head -n1) in $cuda_home"
      # An explicit arch list also keeps torch from probing GPUs (it crashes when there are none).
      build_env=(FORCE_CUDA=1 CUDA_HOME="$cuda_home" TORCH_CUDA_ARCH_LIST="$MMCV_ARCH_LIST")
    else
      say "building mmcv $MMCV_VERSION with C++ ops from source (no cached wheel in $WHEEL_DIR)"
      say "this happens once per machine and takes 10 to 30 min on 2 cores; progress below"
      # Only the CPU ops: no GPU here (or a CPU-only torch), so no CUDA kernels to build.
      build_env=(FORCE_CUDA=0)
    fi
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation \
      -d "$build" "mmcv==$MMCV_VERSION"
    tar -xzf "$build/mmcv-$MMCV_VERSION.tar.gz" -C "$build"
    src="$build/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers require C++20; mmcv's setup.py pins c++14/17.
    sed -i -e 's/c++14/c++20/g' -e 's/c++17/c++20/g' "$src/setup.py"
    log="$WHEEL_DIR/build.log"
    set +e
    env MMCV_WITH_OPS=1 "${build_env[@]}" MAX_JOBS="$jobs" \
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
  # The CPU and CUDA wheels carry the same name and version: pip would keep the other one.
  "${PIP[@]}" uninstall -q -y mmcv >/dev/null 2>&1 || true
  "${PIP[@]}" install -q "$MMCV_WHEEL"
fi
echo "$MMCV_WHEEL_KEY" > "$MMCV_MARK"

say "installing the pinned stack (requirements.txt)"
"${PIP[@]}" install -q -r "$ROOT/requirements.txt"
say "installing this repository in editable mode"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"
pin_setuptools  # requirements.txt may have pulled a newer one back in for torch

say "checking the stack"
# A CUDA build is also checked for device code, which needs no GPU; its kernels run only where one is.
"$PY" "$ROOT/tools/check_env.py" ${MMCV_CUDA_VERSION:+--expect-mmcv-cuda "$MMCV_CUDA_VERSION"}
echo "$WANT_STAMP" > "$STAMP_FILE"
say "done: activate with 'source $VENV/bin/activate'"

#!/usr/bin/env bash
# One idempotent setup for the whole suite: a virtual environment with torch,
# timm, mmengine, mmcv (built from source with its C++ ops), mmdet, mmseg and
# this repository installed in editable mode.
#
#   bash tools/setup_env.sh            # creates/updates .venv, prints what it does
#   DT_TORCH=system PYTHON=/opt/torch/.venv/bin/python3 bash tools/setup_env.sh   # over that Python's torch
#   DT_WHEELHOUSE=wheelhouse PYTHON=... bash tools/setup_env.sh                    # the same with no network
#
# Environment knobs:
#   DT_VENV   where the virtual environment lives       (default: <repo>/.venv; with DT_TORCH=system,
#             DT_VENV=none installs into PYTHON's own environment instead of a venv over it)
#   DT_TORCH  pinned (default): torch/torchvision from requirements.txt; system: the torch PYTHON
#             already has (a venv that sees PYTHON's packages, installing only what is missing;
#             torch outside tools/check_env.py's supported range: one line, exit 2)
#   DT_WHEELHOUSE  a folder from tools/make_wheelhouse.sh: install from it with no network
#             (implies DT_TORCH=system; a package it lacks is named, exit 2)
#   PYTHON    the interpreter the venv is made from (default: python3)
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
bad_input() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 2; }

WHEELHOUSE="${DT_WHEELHOUSE:-}"
TORCH_MODE="${DT_TORCH:-}"
[[ -n "$TORCH_MODE" ]] || { [[ -n "$WHEELHOUSE" ]] && TORCH_MODE=system || TORCH_MODE=pinned; }
case "$TORCH_MODE" in
  pinned|system) ;;
  *) bad_input "DT_TORCH=$TORCH_MODE: use DT_TORCH=system (the torch PYTHON has) or DT_TORCH=pinned (requirements.txt)" ;;
esac
if [[ -n "$WHEELHOUSE" ]]; then
  [[ "$TORCH_MODE" == system ]] || bad_input "DT_WHEELHOUSE holds no torch: it goes with DT_TORCH=system, not DT_TORCH=pinned"
  [[ -d "$WHEELHOUSE" ]] || bad_input "DT_WHEELHOUSE=$WHEELHOUSE: no such directory"
  WHEELHOUSE="$(cd "$WHEELHOUSE" && pwd)"
fi
[[ "$VENV" != none || "$TORCH_MODE" == system ]] || bad_input "DT_VENV=none goes with DT_TORCH=system"
if [[ "$TORCH_MODE" == system ]]; then
  command -v "$PY_BASE" >/dev/null 2>&1 || bad_input "PYTHON=$PY_BASE: no such interpreter"
  # No torch, or one outside the supported range: one line naming it and the range, exit 2.
  "$PY_BASE" "$ROOT/tools/check_env.py" --torch-range --quiet || exit 2
fi

# The stamp records what this venv was built from; any change re-runs the installs.
# The package list is in it because the editable install maps packages that existed when it ran.
# An explicit CUDA request is in it too: it must not be answered by a CPU venv's fast path.
stamp_of() {
  { cat "$ROOT/requirements.txt" "$ROOT/requirements-build.txt" "$ROOT/pyproject.toml" \
        "$ROOT/tools/setup_env.sh" "$PLAN_TOOL"; (cd "$ROOT" && ls -d */__init__.py)
    if [[ -n "${DT_MMCV_CUDA:-}" ]]; then echo "DT_MMCV_CUDA=$DT_MMCV_CUDA ${TORCH_CUDA_ARCH_LIST:-}"; fi
    if [[ "$TORCH_MODE" == system ]]; then
      echo "DT_TORCH=system $("$PY_BASE" -c 'import sys, torch; print(sys.prefix, torch.__version__)')"
      cat "$ROOT/tools/wheelhouse.py"
    fi
  } | sha256sum | cut -d' ' -f1
}
# Bad knobs (e.g. DT_MMCV_CUDA=1 without an arch list and no GPU) fail here, before any install.
"$PY_BASE" "$PLAN_TOOL" --precheck
if [[ "$VENV" == none ]]; then
  # No venv: PYTHON's own environment; the stamps live in the cache, one folder per interpreter.
  PY="$("$PY_BASE" -c 'import sys; print(sys.executable)')"
  STATE="$CACHE/state/$(printf '%s' "$PY" | sha256sum | cut -c1-16)"
  mkdir -p "$STATE"
else
  PY="$VENV/bin/python"
  STATE="$VENV"
fi
STAMP_FILE="$STATE/.dropout-transfer-stamp"
WANT_STAMP="$(stamp_of)"

if [[ -x "$PY" && -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$WANT_STAMP" ]]; then
  if "$PY" "$ROOT/tools/check_env.py" --quiet; then
    say "environment up to date: $("$PY" -c 'import sys; print(sys.prefix)')"
    exit 0
  fi
  say "stamp matches but the environment check failed; reinstalling"
fi

if [[ "$VENV" != none && ! -x "$VENV/bin/python" ]]; then
  if [[ "$TORCH_MODE" == system ]]; then
    say "creating virtual environment $VENV over $PY_BASE's packages (DT_TORCH=system)"
    # Without ensurepip (a distribution's python3 lacking python3-venv) the venv gets no pip of its
    # own and runs PYTHON's, which the .pth below makes importable; pip installs into the venv.
    "$PY_BASE" -m venv --system-site-packages "$VENV" 2>/dev/null \
      || { rm -rf "$VENV"; "$PY_BASE" -m venv --system-site-packages --without-pip "$VENV"; }
    # --system-site-packages shows the *base* interpreter's packages only: when PYTHON is itself a
    # venv (e.g. /opt/torch/.venv), its torch would be invisible. A .pth names every path PYTHON
    # imports from that the new venv lacks (its site dirs, their .pth entries), after the venv's
    # own site-packages, so what we install there wins.
    site_dir="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    own="$("$PY" -c 'import sys; print("\n".join(sys.path))')"
    "$PY_BASE" -c 'import sys; own = set(sys.argv[1].splitlines()); print("\n".join(p for p in sys.path[1:] if p and p not in own))' \
      "$own" > "$site_dir/_dropout_transfer_base.pth"
  else
    say "creating virtual environment $VENV"
    "$PY_BASE" -m venv "$VENV"
  fi
fi
PY_TORCH="$("$PY" -c 'import importlib.util as u; s = u.find_spec("torch"); print(s.origin if s else "")' 2>/dev/null || true)"
if [[ "$TORCH_MODE" == system ]]; then
  [[ -n "$PY_TORCH" ]] || die "the venv $VENV does not see $PY_BASE's torch"
  say "using the torch PYTHON has: $("$PY" -c 'import torch; print(torch.__version__)') in ${PY_TORCH%/__init__.py}"
fi
PIP=("$PY" -m pip --disable-pip-version-check)

# mmcv's setup.py and mmengine 0.10.7 (Config's `mmdet::` / `mmseg::` bases) import
# pkg_resources, which setuptools>=70 no longer ships. torch 2.14's metadata asks for
# setuptools>=77 but uses it only to compile C++ extensions (mmcv's build works with
# 69), so the venv keeps setuptools<70, installed without dependency resolution.
pin_setuptools() {
  "${PIP[@]}" install -q --no-deps -r "$ROOT/requirements-build.txt" 2>&1 \
    | grep -v "dependency resolver does not currently\|requires setuptools>=" || true
}

if [[ "$TORCH_MODE" == system ]]; then
  # Only what PYTHON lacks (tools/wheelhouse.py's rules), from the wheelhouse: DT_WHEELHOUSE, or
  # one downloaded for this interpreter into the cache. --no-deps: the list is the whole closure.
  if [[ -z "$WHEELHOUSE" ]]; then
    WHEELHOUSE="$CACHE/wheelhouse/$("$PY" -c 'import sys, platform; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}")')"
    say "downloading what $PY_BASE lacks into $WHEELHOUSE"
    "$PY" "$ROOT/tools/wheelhouse.py" build "$WHEELHOUSE" --have-python "$PY" --max-mib 1000 >/dev/null || exit $?
  fi
  missing="$("$PY" "$ROOT/tools/wheelhouse.py" missing "$WHEELHOUSE")" || exit $?
  if [[ -n "$missing" ]]; then
    say "installing from $WHEELHOUSE (no network): $(xargs -n1 basename <<<"$missing" | sed 's/-[0-9].*//' | xargs)"
    xargs "${PIP[@]}" install -q --no-index --no-deps <<<"$missing" 2>&1 \
      | grep -v "dependency resolver does not currently\|requires setuptools>=" || true
  else
    say "PYTHON already has everything the suite needs beyond mmcv"
  fi
else
  say "installing torch and build tools (torch comes from local disk when available)"
  "${PIP[@]}" install -q wheel ninja \
    "$(grep -E '^torch==' "$ROOT/requirements.txt")" \
    "$(grep -E '^torchvision==' "$ROOT/requirements.txt")"
  pin_setuptools
fi

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
MMCV_MARK="$STATE/.dropout-transfer-mmcv"

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
        toolkit="$MMCV_TOOLKIT_ROOT"  # where torch's own CUDA wheels are (PYTHON's, with DT_TORCH=system)
        if [[ -x "$toolkit/bin/nvcc" ]]; then
          say "nvcc from pip already there: $toolkit/bin/nvcc"
        else
          [[ -z "$WHEELHOUSE" ]] || bad_input "no CUDA $MMCV_CUDA_VERSION nvcc here (CUDA_HOME, PATH, /usr/local/cuda, $toolkit) and no network: set CUDA_HOME to a CUDA $MMCV_CUDA_VERSION toolkit"
          say "installing nvcc from pip: $MMCV_TOOLKIT_SPEC (torch's CUDA is $MMCV_CUDA_VERSION)"
          "${PIP[@]}" install -q "$MMCV_TOOLKIT_SPEC"
          toolkit="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/$(basename "$MMCV_TOOLKIT_ROOT")"
          [[ -x "$toolkit/bin/nvcc" ]] || die "$MMCV_TOOLKIT_SPEC installed no $toolkit/bin/nvcc"
        fi
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
    if [[ -n "$WHEELHOUSE" ]]; then
      [[ -f "$WHEELHOUSE/mmcv-$MMCV_VERSION.tar.gz" ]] \
        || bad_input "wheelhouse $WHEELHOUSE lacks mmcv-$MMCV_VERSION.tar.gz (tools/make_wheelhouse.sh puts it there)"
      cp "$WHEELHOUSE/mmcv-$MMCV_VERSION.tar.gz" "$build/"
    else
      "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation \
        -d "$build" "mmcv==$MMCV_VERSION"
    fi
    tar -xzf "$build/mmcv-$MMCV_VERSION.tar.gz" -C "$build"
    src="$build/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers require C++20; mmcv's setup.py pins c++14/17.
    sed -i -e 's/c++14/c++20/g' -e 's/c++17/c++20/g' "$src/setup.py"
    log="$WHEEL_DIR/build.log"
    build_start=$SECONDS
    set +e
    env MMCV_WITH_OPS=1 "${build_env[@]}" MAX_JOBS="$jobs" \
      "${PIP[@]}" wheel -v --no-build-isolation --no-deps "$src" -w "$WHEEL_DIR" 2>&1 \
      | tee "$log" | grep --line-buffered -oE '^\s*\[[0-9]+/[0-9]+\]' \
      | while read -r step; do say "mmcv compile $step  ($(date +%H:%M:%S))"; done  # (mawk would buffer)
    status="${PIPESTATUS[0]}"
    set -e
    MMCV_WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
    [[ "$status" == 0 && -n "$MMCV_WHEEL" ]] || die "mmcv build failed; full log: $log"
    say "built $MMCV_WHEEL in $(( SECONDS - build_start )) s"
  else
    say "reusing cached mmcv wheel $MMCV_WHEEL"
  fi
  # The CPU and CUDA wheels carry the same name and version: pip would keep the other one.
  "${PIP[@]}" uninstall -q -y mmcv >/dev/null 2>&1 || true
  if [[ "$TORCH_MODE" == system ]]; then
    "${PIP[@]}" install -q --no-index --no-deps "$MMCV_WHEEL"  # its needs came with the wheelhouse
  else
    "${PIP[@]}" install -q "$MMCV_WHEEL"
  fi
fi
echo "$MMCV_WHEEL_KEY" > "$MMCV_MARK"

if [[ "$TORCH_MODE" == pinned ]]; then
  say "installing the pinned stack (requirements.txt)"
  "${PIP[@]}" install -q -r "$ROOT/requirements.txt"
fi
say "installing this repository in editable mode"
"${PIP[@]}" install -q --no-index --no-deps --no-build-isolation -e "$ROOT"
[[ "$TORCH_MODE" == system ]] || pin_setuptools  # requirements.txt may have pulled a newer one back in for torch

say "checking the stack"
# A CUDA build is also checked for device code, which needs no GPU; its kernels run only where one is.
"$PY" "$ROOT/tools/check_env.py" ${MMCV_CUDA_VERSION:+--expect-mmcv-cuda "$MMCV_CUDA_VERSION"}
echo "$WANT_STAMP" > "$STAMP_FILE"
if [[ "$VENV" == none ]]; then say "done: $PY has the stack"; else say "done: activate with 'source $VENV/bin/activate'"; fi

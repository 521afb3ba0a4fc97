"""Decide how tools/setup_env.sh builds mmcv: CPU ops only, or with CUDA ops, and
with which nvcc, for which GPU architectures, under which cache key.

    python tools/mmcv_build_plan.py            # the plan for this venv, readable
    python tools/mmcv_build_plan.py --shell    # KEY='value' lines for setup_env.sh's eval
    python tools/mmcv_build_plan.py --precheck # only the environment knobs (stdlib, before a venv exists)
    python tools/mmcv_build_plan.py --compose-cuda-home DIR --toolkit-dir TK   # prints the CUDA_HOME a build uses

Rules:
- CUDA ops when DT_MMCV_CUDA=1, or when DT_MMCV_CUDA is unset, torch is a CUDA
  build and torch sees a GPU; otherwise CPU ops only (the build and cache dir
  used before CUDA support existed, so old caches are reused).
- Architectures: TORCH_CUDA_ARCH_LIST when set (torch's own knob), else the
  visible GPUs' compute capabilities. DT_MMCV_CUDA=1 with neither is an error.
- nvcc: the first system toolkit (CUDA_HOME, CUDA_PATH, nvcc on PATH,
  /usr/local/cuda) whose release equals torch's CUDA major.minor; else the
  cuda-toolkit[nvcc,cccl,crt] wheels at the version torch itself pulled in.
- Cache key: mmcv, torch, Python, machine; CUDA builds add CUDA version and
  arch list, so CPU and CUDA wheels never share a directory.
- The build's CUDA_HOME is the toolkit itself when it is complete, else a
  directory of symlinks over it, completed with the CUDA library headers torch's
  own headers include (cusparse.h, cublas_v2.h, ...) from the pip packages torch
  came with (``nvidia/*/include``) when the toolkit lacks them (an nvcc-only
  toolkit, like this image's /usr/local/cuda, does), and with ``libcudart.so``:
  torch links -lcudart and pip ships only libcudart.so.<major>. Toolkit files win.

Every input can be simulated (--torch-version, --torch-cuda, --gpus,
--system-cuda, --toolkit-version; the knobs come from the environment), which
is how the tests check the rules without a GPU or a build. Bad knobs: one
line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional, Sequence

MMCV_VERSION = "2.1.0"
TOOLKIT_EXTRAS = "nvcc,cccl,crt"
# Calibrated on the whole sm_90 build measured here (BENCHMARKS.md: 136 units in 29 min on
# 2 cores, at most 57 CPU-minutes): CPU seconds per .cu file for one arch, how much each
# further arch adds to them (ENVIRONMENT.md: 2.7x for six archs), and the C++ units.
CU_FILES, CU_SECONDS, EXTRA_ARCH_FACTOR, REST_CORE_MINUTES = 58, 39, 0.34, 19
ARCH_RE = re.compile(r"^(\d+)\.(\d+)([af]?)(\+PTX)?$")


class PlanError(ValueError):
    """A knob or input that cannot give a build; its message is the one line shown."""


@dataclass
class Plan:
    mode: str                       # "cpu" or "cuda"
    reason: str
    wheel_key: str                  # directory name under <cache>/wheels/
    cuda_version: str = ""          # torch's CUDA major.minor, for CUDA builds
    arch_list: str = ""             # TORCH_CUDA_ARCH_LIST for the build, normalised
    toolkit: str = ""               # "system" or "wheels"
    cuda_home: str = ""             # system toolkit to build with
    toolkit_spec: str = ""          # pip requirement for the wheels route
    toolkit_root: str = ""          # where those wheels put bin/, include/, lib/
    estimate: str = ""
    notes: list = field(default_factory=list)


def parse_arch_list(text: str) -> list[str]:
    """TORCH_CUDA_ARCH_LIST ('8.0;9.0+PTX', spaces also separate) -> sorted unique entries."""
    items = [t for t in re.split(r"[;\s,]+", text.strip()) if t]
    if not items:
        raise PlanError("TORCH_CUDA_ARCH_LIST is empty; give compute capabilities such as 9.0 or '8.0;9.0'")
    for item in items:
        if not ARCH_RE.match(item):
            raise PlanError(f"TORCH_CUDA_ARCH_LIST entry {item!r} is not a compute capability "
                            "such as 8.6, 9.0a or 9.0+PTX")

    def order(item):
        m = ARCH_RE.match(item)
        return int(m.group(1)), int(m.group(2)), m.group(3), m.group(4) or ""
    return sorted(set(items), key=order)


def arch_key(archs: Sequence[str]) -> str:
    """['8.0', '9.0+PTX'] -> 'sm80_sm90ptx' (a directory-name-safe form)."""
    return "_".join("sm" + a.replace(".", "").replace("+PTX", "ptx") for a in archs)


def cuda_tag(cuda_version: str) -> str:
    major, minor = cuda_version.split(".")[:2]
    return f"cu{major}{minor}"


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def wheel_key(mmcv_version: str, torch_version: str, py_tag: str, machine: str,
              cuda_version: str = "", archs: Sequence[str] = ()) -> str:
    key = f"mmcv-{mmcv_version}-torch{torch_version.split('+')[0]}-{py_tag}-{machine}"
    return f"{key}-{cuda_tag(cuda_version)}-{arch_key(archs)}" if cuda_version else key


def estimate(archs: Sequence[str], jobs: int) -> str:
    core_min = CU_FILES * CU_SECONDS / 60 * (1 + EXTRA_ARCH_FACTOR * (len(archs) - 1)) + REST_CORE_MINUTES
    jobs = max(1, jobs)
    return (f"about {max(5, round(core_min / jobs))} min with {jobs} compile job(s) for {len(archs)} arch(s) "
            f"(estimate: ~{round(core_min)} CPU-minutes; one arch took 29 min on a 2-core machine)")


def requested_mode(env: Mapping[str, str]) -> str:
    """DT_MMCV_CUDA: unset/empty -> 'auto', '1' -> 'cuda'."""
    value = env.get("DT_MMCV_CUDA", "").strip()
    if value == "":
        return "auto"
    if value == "1":
        return "cuda"
    raise PlanError(f"DT_MMCV_CUDA={value!r}: use DT_MMCV_CUDA=1 to build mmcv's CUDA ops, or leave it unset "
                    "to decide from torch and the visible GPUs")


def check_request(env: Mapping[str, str], gpus_maybe_visible: bool) -> None:
    """The checks that need no torch (run before the venv exists)."""
    if requested_mode(env) != "cuda":
        return
    if env.get("TORCH_CUDA_ARCH_LIST", "").strip():
        parse_arch_list(env["TORCH_CUDA_ARCH_LIST"])
    elif not gpus_maybe_visible:
        raise PlanError("DT_MMCV_CUDA=1 needs TORCH_CUDA_ARCH_LIST (e.g. TORCH_CUDA_ARCH_LIST=9.0) "
                        "when no GPU is visible")


def make_plan(*, torch_version: str, torch_cuda: Optional[str], gpus: Sequence[str],
              env: Mapping[str, str], system_cuda: Sequence[tuple] = (), toolkit_version: Optional[str] = None,
              site_packages: str = "<site-packages>", py_tag: str = "cp311", machine: str = "x86_64",
              jobs: int = 2, mmcv_version: str = MMCV_VERSION) -> Plan:
    """The build plan from simulated or probed inputs.

    torch_cuda: torch.version.cuda (None for a CPU build); gpus: visible compute
    capabilities ('9.0'); system_cuda: (CUDA_HOME candidate, its nvcc release or
    None) in search order; toolkit_version: the installed cuda-toolkit wheel's version.
    """
    want = requested_mode(env)
    cpu_key = wheel_key(mmcv_version, torch_version, py_tag, machine)
    if want == "auto":
        if not torch_cuda:
            return Plan("cpu", f"torch {torch_version} is a CPU-only build", cpu_key)
        if not gpus:
            return Plan("cpu", f"no GPU visible to torch {torch_version}; DT_MMCV_CUDA=1 with "
                               "TORCH_CUDA_ARCH_LIST builds the CUDA ops anyway", cpu_key)
    elif not torch_cuda:
        raise PlanError(f"DT_MMCV_CUDA=1 but the venv's torch {torch_version} is a CPU-only build "
                        "(torch.version.cuda is None)")

    arch_env = env.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if arch_env:
        archs, arch_from = parse_arch_list(arch_env), "TORCH_CUDA_ARCH_LIST"
    elif gpus:
        archs, arch_from = parse_arch_list(";".join(gpus)), "the visible GPUs"
    else:
        raise PlanError("DT_MMCV_CUDA=1 needs TORCH_CUDA_ARCH_LIST (e.g. TORCH_CUDA_ARCH_LIST=9.0) "
                        "when no GPU is visible")

    cuda = major_minor(torch_cuda)
    why = "DT_MMCV_CUDA=1" if want == "cuda" else f"{len(gpus)} GPU(s) visible"
    plan = Plan("cuda", f"{why}; torch {torch_version} is built for CUDA {cuda}; archs from {arch_from}",
                wheel_key(mmcv_version, torch_version, py_tag, machine, cuda, archs),
                cuda_version=cuda, arch_list=";".join(archs), estimate=estimate(archs, jobs))

    for home, release in system_cuda:
        if release and major_minor(release) == cuda:
            plan.toolkit, plan.cuda_home = "system", home
            return plan
        plan.notes.append(f"{home}: nvcc release {release or 'unknown'}, torch needs {cuda}; not used")
    major = int(cuda.split(".")[0])
    if major < 13:
        # Before CUDA 13 the pip toolkit spreads over nvidia/cuda_nvcc, nvidia/cuda_runtime, ...;
        # only the single nvidia/cu13 tree is wired (and measured) here.
        raise PlanError(f"torch {torch_version} needs a CUDA {cuda} toolkit and none was found "
                        f"(looked at CUDA_HOME, CUDA_PATH, nvcc on PATH, /usr/local/cuda): "
                        f"set CUDA_HOME to a CUDA {cuda} install")
    # The version torch itself pulled in keeps nvcc, headers and runtime in step.
    pinned = toolkit_version if toolkit_version and major_minor(toolkit_version) == cuda else f"{cuda}.*"
    plan.toolkit = "wheels"
    plan.toolkit_spec = f"cuda-toolkit[{TOOLKIT_EXTRAS}]=={pinned}"
    plan.toolkit_root = os.path.join(site_packages, "nvidia", f"cu{major}")
    return plan


def render_text(plan: Plan) -> str:
    if plan.mode == "cpu":
        return f"mmcv ops: CPU only ({plan.reason}); wheel cache {plan.wheel_key}"
    tool = (f"system CUDA at {plan.cuda_home}" if plan.toolkit == "system"
            else f"nvcc from pip ({plan.toolkit_spec})")
    return (f"mmcv ops: CPU and CUDA {plan.cuda_version} for {plan.arch_list} ({plan.reason}); {tool}; "
            f"wheel cache {plan.wheel_key}")


def render_shell(plan: Plan) -> str:
    values = {"MMCV_MODE": plan.mode, "MMCV_WHEEL_KEY": plan.wheel_key, "MMCV_CUDA_VERSION": plan.cuda_version,
              "MMCV_ARCH_LIST": plan.arch_list, "MMCV_TOOLKIT": plan.toolkit, "MMCV_CUDA_HOME": plan.cuda_home,
              "MMCV_TOOLKIT_SPEC": plan.toolkit_spec, "MMCV_TOOLKIT_ROOT": plan.toolkit_root,
              "MMCV_ESTIMATE": plan.estimate, "MMCV_PLAN_TEXT": render_text(plan)}
    return "\n".join(f"{k}={shlex.quote(v)}" for k, v in values.items())


# Headers torch's CUDA headers include that only a full toolkit (or torch's pip packages) has.
TORCH_CUDA_HEADERS = ("cusparse.h", "cublas_v2.h", "cusolverDn.h")


def _runtime_to_link(lib_dirs: Sequence[str]) -> Optional[str]:
    """The versioned libcudart to give an unversioned name, or None when there is
    already an unversioned one or no runtime at all in these dirs (a distribution
    toolkit keeps it on the linker's default path, e.g. /usr/lib/x86_64-linux-gnu)."""
    names = set()
    for d in lib_dirs:
        if os.path.isdir(d):
            names.update(os.listdir(d))
    if "libcudart.so" in names:
        return None
    versioned = sorted(n for n in names if n.startswith("libcudart.so."))
    return versioned[0] if versioned else None


def compose_cuda_home(home: str, toolkit: str, site_packages: str) -> tuple[str, list[str]]:
    """The CUDA_HOME a build uses: ``toolkit`` itself when it has the headers torch
    includes and an unversioned libcudart (or none of its own), else ``home``
    filled with symlinks: the toolkit's top-level entries, its headers plus those
    of ``<site_packages>/nvidia/*/include`` it lacks, its libraries (lib64/ and
    lib/) plus ``libcudart.so``. Returns (CUDA_HOME, headers taken from torch's
    packages); PlanError when nvcc or a header torch needs is missing, or ``home``
    is in the way."""
    home, toolkit, site_packages = map(os.path.abspath, (home, toolkit, site_packages))
    if not os.access(os.path.join(toolkit, "bin", "nvcc"), os.X_OK):
        raise PlanError(f"no nvcc in {toolkit}/bin")
    tk_libs = [os.path.join(toolkit, "lib64"), os.path.join(toolkit, "lib")]
    lacking = [h for h in TORCH_CUDA_HEADERS if not os.path.exists(os.path.join(toolkit, "include", h))]
    runtime = _runtime_to_link(tk_libs)
    if not lacking and runtime is None:
        return toolkit, []
    if os.path.exists(home) and (not os.path.isdir(home) or os.listdir(home)):
        raise PlanError(f"--compose-cuda-home {home}: exists and is not an empty directory")
    inc, lib = os.path.join(home, "include"), os.path.join(home, "lib64")
    os.makedirs(inc, exist_ok=True)
    os.makedirs(lib, exist_ok=True)

    def link_entries(src_dir: str, dst_dir: str, skip=()) -> list[str]:
        added = []
        for name in sorted(os.listdir(src_dir)) if os.path.isdir(src_dir) else []:
            src, dst = os.path.join(src_dir, name), os.path.join(dst_dir, name)
            # a broken link in the toolkit must not hide torch's good header
            if name not in skip and os.path.exists(src) and not os.path.lexists(dst):
                os.symlink(src, dst)
                added.append(name)
        return added

    link_entries(toolkit, home, skip=("include", "lib", "lib64"))
    link_entries(os.path.join(toolkit, "include"), inc)
    from_torch = []
    for pkg_include in sorted(glob.glob(os.path.join(site_packages, "nvidia", "*", "include"))):
        from_torch += link_entries(pkg_include, inc)
    for d in tk_libs:
        link_entries(d, lib)
    if runtime is not None:
        os.symlink(runtime, os.path.join(lib, "libcudart.so"))
    missing = [h for h in TORCH_CUDA_HEADERS if not os.path.exists(os.path.join(inc, h))]
    if missing:
        raise PlanError(f"{', '.join(missing)} neither in {toolkit}/include nor in torch's "
                        f"{site_packages}/nvidia/*/include: torch's CUDA headers include them")
    return home, [h for h in from_torch if h in TORCH_CUDA_HEADERS]


# ------------------------------------------------------------------ probing --
def nvcc_release(home: str) -> Optional[str]:
    nvcc = os.path.join(home, "bin", "nvcc")
    if not os.access(nvcc, os.X_OK):
        return None
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else None


def is_toolkit(home: str) -> bool:
    # An nvcc wrapper script in /usr/local/bin makes torch's own guess /usr/local: no headers there.
    return os.access(os.path.join(home, "bin", "nvcc"), os.X_OK) and \
        os.path.isfile(os.path.join(home, "include", "cuda_runtime.h"))


def system_cuda_candidates(env: Mapping[str, str]) -> list[str]:
    """Toolkit dirs in torch's search order (CUDA_HOME, CUDA_PATH, nvcc on PATH,
    /usr/local/cuda), keeping only real toolkits."""
    homes = [env.get("CUDA_HOME", ""), env.get("CUDA_PATH", "")]
    nvcc = shutil.which("nvcc", path=env.get("PATH"))
    if nvcc:
        homes += [os.path.dirname(os.path.dirname(nvcc)), os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))]
    homes.append("/usr/local/cuda")
    seen, out = set(), []
    for h in homes:
        if h and is_toolkit(h) and os.path.realpath(h) not in seen:
            seen.add(os.path.realpath(h))
            out.append(h)
    return out


def gpus_maybe_visible() -> bool:
    """Without torch: device nodes or nvidia-smi. Only used to fail early, so err towards 'maybe'."""
    if glob.glob("/dev/nvidia[0-9]*"):
        return True
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        return "GPU" in subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return True


def probe_torch() -> tuple[str, Optional[str], list[str]]:
    import torch
    gpus = []
    if torch.version.cuda and torch.cuda.is_available():
        gpus = [".".join(map(str, torch.cuda.get_device_capability(i))) for i in range(torch.cuda.device_count())]
    return torch.__version__, torch.version.cuda, gpus


def torch_site_packages() -> str:
    """Where torch and its nvidia/* packages are installed: the venv's own site-packages, or the
    interpreter's a venv over it sees (DT_TORCH=system), found without importing torch."""
    import importlib.util
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return sysconfig.get_paths()["purelib"]
    return os.path.dirname(os.path.dirname(spec.origin))


def installed_toolkit_version() -> Optional[str]:
    from importlib import metadata
    try:
        return metadata.version("cuda-toolkit")
    except metadata.PackageNotFoundError:
        return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--shell", action="store_true", help="print KEY='value' lines for eval")
    out.add_argument("--json", action="store_true", help="print the plan as JSON")
    out.add_argument("--precheck", action="store_true", help="check only the knobs (no torch needed)")
    out.add_argument("--compose-cuda-home", metavar="DIR",
                     help="fill DIR as the build's CUDA_HOME (with --toolkit-dir)")
    parser.add_argument("--toolkit-dir", help="the toolkit --compose-cuda-home builds on")
    parser.add_argument("--torch-version", help="simulate torch.__version__")
    parser.add_argument("--torch-cuda", help="simulate torch.version.cuda ('none' for a CPU build)")
    parser.add_argument("--gpus", help="simulate the visible GPUs' capabilities, e.g. '9.0,8.0' ('none': no GPU)")
    parser.add_argument("--system-cuda", action="append", metavar="DIR=RELEASE",
                        help="simulate a system toolkit and its nvcc release (repeatable; 'none': no toolkit)")
    parser.add_argument("--toolkit-version", help="simulate the installed cuda-toolkit wheel's version ('none')")
    parser.add_argument("--mmcv-version", default=MMCV_VERSION)
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MAX_JOBS") or os.cpu_count() or 1))
    args = parser.parse_args(argv)
    env = os.environ

    def none_or(value):
        return None if value in (None, "none", "") else value

    try:
        if args.precheck:
            check_request(env, gpus_maybe_visible())
            return 0
        if args.compose_cuda_home:
            if not args.toolkit_dir:
                raise PlanError("--compose-cuda-home needs --toolkit-dir")
            home, found = compose_cuda_home(args.compose_cuda_home, args.toolkit_dir, torch_site_packages())
            if found:
                print(f"[setup] CUDA library headers from torch's packages: {' '.join(found)}", file=sys.stderr)
            print(home)
            return 0
        if args.toolkit_dir:
            raise PlanError("--toolkit-dir goes with --compose-cuda-home")
        if args.torch_version is None or args.torch_cuda is None or args.gpus is None:
            torch_version, torch_cuda, gpus = probe_torch()
        else:
            torch_version, torch_cuda, gpus = args.torch_version, None, []
        if args.torch_version is not None:
            torch_version = args.torch_version
        if args.torch_cuda is not None:
            torch_cuda = none_or(args.torch_cuda)
        if args.gpus is not None:
            gpus = [g for g in re.split(r"[,;\s]+", args.gpus) if g and g != "none"]
        if args.system_cuda is not None:
            system = [tuple(s.split("=", 1)) for s in args.system_cuda if s != "none"]
        else:
            system = [(h, nvcc_release(h)) for h in system_cuda_candidates(env)]
        tk = none_or(args.toolkit_version) if args.toolkit_version is not None else installed_toolkit_version()
        plan = make_plan(torch_version=torch_version, torch_cuda=torch_cuda, gpus=gpus, env=env,
                         system_cuda=system, toolkit_version=tk, site_packages=torch_site_packages(),
                         py_tag=f"cp{sys.version_info[0]}{sys.version_info[1]}", machine=platform.machine(),
                         jobs=args.jobs, mmcv_version=args.mmcv_version)
    except (PlanError, OSError) as exc:  # OSError: a --compose-cuda-home path that cannot be written
        print(f"[setup] ERROR: {exc}", file=sys.stderr)
        return 2
    if args.shell:
        print(render_shell(plan))
    elif args.json:
        print(json.dumps(asdict(plan), indent=1))
    else:
        print(render_text(plan))
        for note in plan.notes:
            print(f"  note: {note}")
        if plan.mode == "cuda":
            print(f"  expected build time: {plan.estimate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

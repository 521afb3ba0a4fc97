"""The wheels this suite needs beyond a machine's own torch, for installs with no network.

    python tools/wheelhouse.py build DIR [--python 3.12] [--platform manylinux_2_28_x86_64]
                                         [--have FILE | --have-python PY] [--max-mib 60]
    python tools/wheelhouse.py missing DIR     # with the target's python: the wheels it lacks, one path a line

``build`` (on a machine with the package index) resolves requirements.txt,
requirements-build.txt, ``wheel`` and ``ninja`` (mmcv's parallel compile) and
mmcv's own runtime needs (``requirements/runtime.txt`` of its sdist) for the
target Python and platform, leaves out what the target already has (``--have``:
its ``pip list --format=freeze``, or names alone; ``--have-python``: read that
interpreter's packages), and downloads the rest as wheels, one level of
dependencies at a time (``pip download --no-deps --only-binary=:all:``), plus the
mmcv sdist. It writes ``wheelhouse.json`` (target, files, who needed each, what
the target already had), prints each file and the total size, and fails when
the total is over ``--max-mib``.

``missing`` (on the target, no network) runs the same resolution against the
interpreter's installed packages and the wheels in DIR, and prints the wheels
to install (``pip install --no-index --no-deps``); a package DIR lacks is one
line naming it and what needs it, exit 2.

Rules of the resolution (one place, used by both):
- torch, torchvision and what torch brings (triton, nvidia-*, cuda-*) are the
  target's own and never in the wheelhouse;
- a package the target has is kept when its version satisfies the requirement
  (with names only: when the requirement is at most a lower bound);
  an exact pin (``==``) is installed beside it otherwise (in a venv over the
  target's packages it shadows theirs there only), except numpy: their torch,
  scipy and pandas are built against the numpy they have;
- opencv-python (asked for by mmcv and mmengine) is satisfied by any OpenCV
  distribution that provides ``cv2`` (opencv-python-headless, ...);
- bad input (no requirements file, an unreadable --have file, a missing
  package): one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

try:
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.tags import sys_tags
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import InvalidVersion, Version
except ImportError:  # every venv has pip, and pip vendors packaging
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.tags import sys_tags
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
    from pip._vendor.packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
MMCV_VERSION = "2.1.0"
MMCV_SDIST = f"mmcv-{MMCV_VERSION}.tar.gz"
# mmcv's build: wheel for setuptools<70's bdist_wheel, ninja for MAX_JOBS parallel compiles.
BUILD_TOOLS = ("wheel", "ninja")
KEEP_THEIRS = {"numpy"}
ALIASES = {"opencv-python": ("opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")}
MANIFEST = "wheelhouse.json"


class WheelhouseError(ValueError):
    """Bad input or a package that cannot be had; the message is the one line shown."""


def provided_by_torch(name: str) -> bool:
    name = canonicalize_name(name)
    return name in ("torch", "torchvision", "triton") or name.startswith(("nvidia-", "cuda-"))


def read_requirements(path: Path) -> list[Requirement]:
    if not path.is_file():
        raise WheelhouseError(f"{path}: no such requirements file")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            out.append(Requirement(line))
        except InvalidRequirement as exc:
            raise WheelhouseError(f"{path}:{n}: {line!r} is not a requirement ({exc})") from None
    return out


def suite_requirements(root: Path = ROOT) -> list[Requirement]:
    """What the suite asks for beyond mmcv (whose needs come from its sdist)."""
    reqs = read_requirements(root / "requirements.txt") + read_requirements(root / "requirements-build.txt")
    return reqs + [Requirement(t) for t in BUILD_TOOLS]


def mmcv_requirements(sdist: Path) -> list[Requirement]:
    """mmcv's runtime needs, from its sdist's requirements/runtime.txt (its setup.py reads the same file)."""
    if not sdist.is_file():
        raise WheelhouseError(f"{sdist}: no mmcv sdist (make_wheelhouse.sh puts {MMCV_SDIST} there)")
    with tarfile.open(sdist) as tar:
        member = tar.extractfile(f"mmcv-{MMCV_VERSION}/requirements/runtime.txt")
        lines = member.read().decode().splitlines() if member else []
    return [Requirement(s.strip()) for s in lines if s.strip() and not s.startswith("#")]


def parse_have(lines: Iterable[str], source: str) -> dict[str, Optional[str]]:
    """``pip freeze`` / ``pip list --format=freeze`` lines (or bare names) -> {name: version or None}."""
    have = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:(?:==|===)\s*([^\s;]+)|@.*)?$", line)
        if not m:
            raise WheelhouseError(f"{source}: {line!r} is not 'name==version' or a name")
        have[canonicalize_name(m.group(1))] = m.group(2)
    return have


HAVE_SNIPPET = ("import importlib.metadata as m\n"
                "for d in m.distributions():\n"
                "    n = d.metadata['Name']\n"
                "    print(f'{n}=={d.version}') if n else None\n")


def installed(python: Optional[str] = None) -> dict[str, Optional[str]]:
    """The distributions an interpreter sees on its sys.path (.pth entries included)."""
    if python is None:
        import importlib.metadata as md
        have = {}
        for d in md.distributions():  # in sys.path order: the first is the one imported
            if d.metadata["Name"]:
                have.setdefault(canonicalize_name(d.metadata["Name"]), d.version)
        return have
    try:
        out = subprocess.run([python, "-c", HAVE_SNIPPET], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise WheelhouseError(f"--have-python {python}: cannot list its packages ({exc})") from None
    have = {}
    for name, version in (line.split("==", 1) for line in out.splitlines() if "==" in line):
        have.setdefault(canonicalize_name(name), version)  # the first on sys.path wins, as at import
    return have


def satisfied(req: Requirement, have: Mapping[str, Optional[str]]) -> bool:
    name = canonicalize_name(req.name)
    for candidate in (name, *ALIASES.get(name, ())):
        if candidate in have:
            version = have[candidate]
            break
    else:
        return False
    if not req.specifier or name in KEEP_THEIRS:
        return True
    if version is None:  # names only: a current release meets a lower bound, not a pin or a cap
        return all(spec.operator in (">=", ">") for spec in req.specifier)
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def target_environment(python_version: str, machine: str) -> dict:
    return {"python_version": python_version, "python_full_version": f"{python_version}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "implementation_version": f"{python_version}.0", "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": machine, "os_name": "posix", "platform_release": "", "platform_version": "",
            "extra": ""}


def wheel_requirements(path: Path) -> list[Requirement]:
    """Requires-Dist of a wheel's METADATA."""
    with zipfile.ZipFile(path) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        text = zf.read(meta).decode("utf-8", "replace")
    return [Requirement(line.split(":", 1)[1].strip()) for line in text.splitlines()
            if line.startswith("Requires-Dist:")]


def merge(reqs: Sequence[Requirement]) -> Requirement:
    spec = SpecifierSet(",".join(str(r.specifier) for r in reqs if r.specifier))
    return Requirement(f"{reqs[0].name}{spec}")


def resolve(roots: Sequence[tuple[Requirement, str]], have: Mapping[str, Optional[str]], env: Mapping[str, str],
            fetch) -> tuple[dict, dict]:
    """Breadth-first over Requires-Dist. ``fetch(list of Requirement) -> {name: wheel path}``.
    Returns ({name: (path, needed_by)}, {name: what the target had, for the record})."""
    chosen, kept = {}, {}
    queue = list(roots)
    while queue:
        level: dict[str, list] = {}
        for req, parent in queue:
            if req.marker is not None and not req.marker.evaluate(dict(env)):
                continue
            name = canonicalize_name(req.name)
            if provided_by_torch(name):
                continue
            if satisfied(req, have):
                kept[name] = have.get(name) or next((f"{a} {have[a]}" for a in ALIASES.get(name, ()) if a in have),
                                                    None)
                continue
            if name in chosen:
                version = parse_wheel_filename(Path(chosen[name][0]).name)[1]
                if req.specifier and not req.specifier.contains(version, prereleases=True):
                    raise WheelhouseError(f"{parent} needs {req} but {name} {version} was chosen for "
                                          f"{chosen[name][1]}")
                continue
            level.setdefault(name, []).append((req, parent))
        if not level:
            break
        wanted = {name: merge([r for r, _ in items]) for name, items in level.items()}
        paths = fetch(list(wanted.values()))
        queue = []
        for name, items in level.items():
            path = paths[name]
            chosen[name] = (str(path), ", ".join(sorted({p for _, p in items})))
            queue += [(r, name) for r in wheel_requirements(Path(path))]
    return chosen, {n: v for n, v in kept.items() if n not in chosen}


# ------------------------------------------------------------- on the target --
def wheelhouse_fetch(directory: Path, needed_by: dict):
    """Pick, for each requirement, the newest wheel in ``directory`` this interpreter can install."""
    tags = set(sys_tags())
    wheels = []
    for p in sorted(directory.glob("*.whl")):
        try:
            name, version, _, wtags = parse_wheel_filename(p.name)
        except Exception:  # noqa: BLE001 - a stray file is not ours to judge
            continue
        if tags & set(wtags):
            wheels.append((canonicalize_name(name), version, p))

    def fetch(reqs):
        out = {}
        for req in reqs:
            name = canonicalize_name(req.name)
            fits = [(v, p) for n, v, p in wheels if n == name and req.specifier.contains(v, prereleases=True)]
            if not fits:
                py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
                raise WheelhouseError(f"wheelhouse {directory} has no wheel of {req} for this Python ({py}, "
                                      f"{platform.machine()}), needed by {needed_by.get(name, 'the suite')}: "
                                      "rebuild it with tools/make_wheelhouse.sh for this target")
            out[name] = max(fits)[1]
        return out
    return fetch


def missing(directory: Path, root: Path = ROOT) -> list[str]:
    if not directory.is_dir():
        raise WheelhouseError(f"DT_WHEELHOUSE={directory}: no such directory")
    roots = [(r, "requirements") for r in suite_requirements(root)]
    roots += [(r, "mmcv") for r in mmcv_requirements(directory / MMCV_SDIST)]
    needed_by = {canonicalize_name(r.name): p for r, p in roots}
    env = {**default_environment(), "extra": ""}
    have = installed()
    chosen, _ = resolve(roots, have, env, wheelhouse_fetch(directory, needed_by))
    return [path for path, _ in chosen.values()]


# ---------------------------------------------------------- on the builder --
def platform_tags(platform_tag: str) -> list[str]:
    """manylinux_2_28_x86_64 -> every manylinux tag a glibc 2.28 machine accepts (pip matches them exactly)."""
    m = re.match(r"^manylinux_(\d+)_(\d+)_(\w+)$", platform_tag)
    if not m:
        return [platform_tag]
    major, minor, arch = int(m.group(1)), int(m.group(2)), m.group(3)
    tags = [f"manylinux_{major}_{n}_{arch}" for n in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_{arch}" for n, name in legacy.items() if minor >= n] + [f"linux_{arch}"]


# PyPI's torch wheels are manylinux_2_28: every machine that runs one accepts these.
DEFAULT_PLATFORM = f"manylinux_2_28_{platform.machine()}"


def pip_fetch(directory: Path, python_version: str, platform_tag: str):
    py_nodot = python_version.replace(".", "")
    base = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
            "--abi", f"cp{py_nodot}", "-d", str(directory)]
    for tag in platform_tags(platform_tag):
        base += ["--platform", tag]

    def fetch(reqs):
        proc = subprocess.run(base + [str(r) for r in reqs], capture_output=True, text=True)
        if proc.returncode != 0:
            err = [ln for ln in proc.stderr.splitlines() if "ERROR" in ln] or proc.stderr.splitlines()[-1:]
            raise WheelhouseError(f"pip download for cp{py_nodot} {platform_tag} failed: "
                                  f"{err[0].strip() if err else proc.returncode}")
        found = {}
        for p in directory.glob("*.whl"):
            name, version, _, _ = parse_wheel_filename(p.name)
            found.setdefault(canonicalize_name(name), []).append((version, p))
        out = {}
        for r in reqs:
            name = canonicalize_name(r.name)
            fits = [(v, p) for v, p in found.get(name, []) if r.specifier.contains(v, prereleases=True)]
            if not fits:
                raise WheelhouseError(f"pip download left no wheel of {r} in {directory}")
            out[name] = max(fits)[1]
        return out
    return fetch


def fetch_sdist(dest: Path) -> None:
    """The mmcv sdist straight from the index (``pip download`` would run its setup.py to read the
    metadata, which needs pkg_resources and torch here), checked against the index's sha256."""
    import urllib.request
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        req = urllib.request.Request(f"{index}/mmcv/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            files = json.load(r)["files"]
        entry = next(f for f in files if f["filename"] == dest.name)
        part = dest.with_suffix(".part")
        with urllib.request.urlopen(entry["url"], timeout=300) as r, open(part, "wb") as f:
            f.write(r.read())
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise WheelhouseError(f"cannot fetch {dest.name} from {index}: {exc or type(exc).__name__}") from None
    if sha256(part) != entry["hashes"]["sha256"]:
        part.unlink()
        raise WheelhouseError(f"{dest.name} from {index} does not match the index's sha256")
    part.rename(dest)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build(directory: Path, python_version: str, platform_tag: str, have: Mapping[str, Optional[str]],
          have_source: str, max_mib: float, root: Path = ROOT) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    sdist = directory / MMCV_SDIST
    if not sdist.is_file():
        fetch_sdist(sdist)
    roots = [(r, "requirements") for r in suite_requirements(root)] + [(r, "mmcv") for r in mmcv_requirements(sdist)]
    m = re.search(r"(x86_64|aarch64|ppc64le|s390x|i686|armv7l)$", platform_tag)
    if not m:
        raise WheelhouseError(f"--platform {platform_tag!r}: give a tag such as manylinux_2_28_x86_64")
    env = target_environment(python_version, m.group(1))
    chosen, kept = resolve(roots, have, env, pip_fetch(directory, python_version, platform_tag))
    keep = {Path(p).name for p, _ in chosen.values()} | {MMCV_SDIST, MANIFEST}
    for stale in directory.iterdir():  # from an earlier build for another target or pin
        if stale.is_file() and stale.name not in keep:
            stale.unlink()
    files = [{"file": MMCV_SDIST, "needed_by": "tools/setup_env.sh (mmcv is built on the target)"}]
    files += [{"file": Path(p).name, "needed_by": parent} for _, (p, parent) in sorted(chosen.items())]
    for f in files:
        f["bytes"] = (directory / f["file"]).stat().st_size
        f["sha256"] = sha256(directory / f["file"])
    manifest = {"target": {"python": python_version, "platform": platform_tag}, "have_from": have_source,
                "kept_from_target": dict(sorted(kept.items())), "files": files,
                "total_bytes": sum(f["bytes"] for f in files)}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    for f in sorted(files, key=lambda f: -f["bytes"]):
        print(f"[wheelhouse] {f['bytes'] / 2**20:7.2f} MiB  {f['file']}  ({f['needed_by']})")
    total = manifest["total_bytes"] / 2**20
    print(f"[wheelhouse] {len(files)} files, {total:.1f} MiB in {directory} for cp{python_version.replace('.', '')} "
          f"{platform_tag}; kept from the target: {', '.join(kept) or 'nothing'}")
    if total > max_mib:
        raise WheelhouseError(f"the wheelhouse is {total:.1f} MiB, over --max-mib {max_mib:g}: give the target's "
                              "packages with --have so that it is left out what it already has")
    return manifest


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="download the wheels for a target")
    b.add_argument("dir", type=Path)
    b.add_argument("--python", default=f"{sys.version_info[0]}.{sys.version_info[1]}",
                   help="target Python major.minor (default: this one)")
    b.add_argument("--platform", default=DEFAULT_PLATFORM,
                   help=f"target manylinux tag (default {DEFAULT_PLATFORM}, as PyPI's torch wheels)")
    have = b.add_mutually_exclusive_group()
    have.add_argument("--have", type=Path, help="the target's `pip list --format=freeze` (or names, one a line)")
    have.add_argument("--have-python", help="an interpreter here whose packages the target has")
    b.add_argument("--max-mib", type=float, default=60.0)
    m = sub.add_parser("missing", help="print the wheels of DIR this interpreter lacks")
    m.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "missing":
            print("\n".join(missing(args.dir)))
            return 0
        if not re.match(r"^3\.\d+$", args.python):
            raise WheelhouseError(f"--python {args.python!r}: give a major.minor such as 3.12")
        if args.have:
            try:
                lines = args.have.read_text().splitlines()
            except OSError as exc:
                raise WheelhouseError(f"--have {args.have}: {exc.strerror}") from None
            have_map, source = parse_have(lines, str(args.have)), str(args.have)
        elif args.have_python:
            have_map, source = installed(args.have_python), args.have_python
        else:
            have_map, source = {}, "nothing (a bare Python with torch)"
        build(args.dir, args.python, args.platform, have_map, source, args.max_mib)
    except WheelhouseError as exc:
        print(f"[wheelhouse] ERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Bring your own torch, offline (issue 23): the wheelhouse builder for another target,
the resolution rules, an offline setup into a temporary venv over an existing torch
(pip cannot reach any index), the setup's and the GPU check's bad input, and the GPU
check's dry run (its GPU steps skip here, with that reason)."""
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import check_env  # tools/ is on pytest's pythonpath
import gpu_check
import wheelhouse
from helpers import REPO, assert_fails_with
from test_gpu_setup import one_line, run  # the setup tests' subprocess helpers, shared
from wheelhouse import Requirement, satisfied

TOOLS = REPO / "tools"

H200 = TOOLS / "wheelhouse_targets/nvidia-h200-cp312.txt"
# Any network use fails at once: no index, and every proxy a dead port.
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": "", "PIP_CONFIG_FILE": os.devnull,
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
# What the base "machine" has: torch and what torch needs, plus the scientific stack a GPU machine
# usually has (numpy, scipy, matplotlib, OpenCV); nothing of the suite.
TORCH_DISTS = ("torch", "torchvision", "numpy", "pillow", "typing-extensions", "sympy", "mpmath", "networkx",
               "jinja2", "markupsafe", "filelock", "fsspec", "scipy", "matplotlib", "contourpy", "cycler",
               "fonttools", "kiwisolver", "packaging", "pyparsing", "python-dateutil", "six", "opencv-python",
               "opencv-python-headless")


# ----------------------------------------------------------- the rules --
@pytest.mark.parametrize("req, have, ok", [
    ("numpy==2.4.6", {"numpy": "2.5.2"}, True),            # theirs: their stack is built against it
    ("pillow==12.3.0", {"pillow": "13.0.0"}, False),        # a pin that differs is installed beside
    ("pillow==12.3.0", {"pillow": "12.3.0"}, True),
    ("pillow==12.3.0", {"pillow": None}, False),            # names only: cannot tell
    ("opencv-python>=3", {"opencv-python-headless": None}, True),  # any cv2 will do
    ("setuptools<70", {"setuptools": None}, False),         # a cap is not assumed
    ("setuptools<70", {"setuptools": "80.1"}, False),
    ("scipy", {"scipy": None}, True),
    ("mmengine>=0.7.1", {}, False),
])
def test_what_the_target_has_is_kept_unless_a_pin_or_cap_says_otherwise(req, have, ok):
    assert satisfied(Requirement(req), have) is ok


def test_torch_and_its_cuda_wheels_are_never_the_wheelhouses():
    assert all(wheelhouse.provided_by_torch(n) for n in ("torch", "torchvision", "triton", "nvidia-cudnn-cu13",
                                                         "cuda-toolkit"))
    assert not wheelhouse.provided_by_torch("timm")


def test_a_glibc_platform_accepts_every_older_manylinux_tag():
    tags = wheelhouse.platform_tags("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux_2_17_x86_64" in tags
    assert "manylinux2014_x86_64" in tags and "manylinux_2_31_x86_64" not in tags


def test_have_files_are_parsed_and_bad_lines_named(tmp_path):
    assert wheelhouse.parse_have(["Pillow==12.3.0", "scipy", "# c", "mmcv @ file:///x"], "f") == \
        {"pillow": "12.3.0", "scipy": None, "mmcv": None}
    with pytest.raises(wheelhouse.WheelhouseError, match="f: 'not a name!' is not"):
        wheelhouse.parse_have(["not a name!"], "f")


# ------------------------------------------------------- the builder --
def test_a_wheelhouse_for_the_gpu_machine_is_small_and_holds_no_torch(tmp_path):
    out = run(["bash", TOOLS / "make_wheelhouse.sh", tmp_path / "wh", "--python", "3.12", "--have", H200],
              timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    manifest = json.loads((tmp_path / "wh/wheelhouse.json").read_text())
    files = {f["file"] for f in manifest["files"]}
    names = {f.split("-")[0].lower() for f in files}
    assert "mmcv-2.1.0.tar.gz" in files and {"mmengine", "mmdet", "mmsegmentation", "pycocotools"} <= names
    assert not names & {"torch", "torchvision", "triton", "numpy", "opencv_python", "scipy", "matplotlib"}
    assert all("cp311" not in f for f in files)  # built for 3.12, not for the Python running it
    assert any(f.startswith("pycocotools-2.0.11-cp312") for f in files)
    total = sum((tmp_path / "wh" / f).stat().st_size for f in files)
    assert total == manifest["total_bytes"] < 60 * 2 ** 20
    assert f"{total / 2 ** 20:.1f} MiB" in out.stdout
    # over the cap: one line, exit 2
    capped = run(["bash", TOOLS / "make_wheelhouse.sh", tmp_path / "wh", "--python", "3.12", "--have", H200,
                  "--max-mib", "5"], timeout=600)
    assert capped.returncode == 2 and "over --max-mib 5" in one_line(capped.stderr)


@pytest.mark.parametrize("args, message", [
    (["--python", "three"], "--python 'three'"),
    (["--have", "/nonexistent/have.txt"], "--have /nonexistent/have.txt"),
    (["--platform", "win_amd64"], "--platform 'win_amd64'"),
])
def test_the_builder_refuses_bad_input_in_one_line(tmp_path, capsys, args, message):
    assert_fails_with(wheelhouse.main, ["build", tmp_path / "wh", *args], capsys, message)


# ------------------------------------------ offline over an existing torch --
def torch_only_python(base: Path) -> Path:
    """A Python that has torch and its own needs, nothing of the suite: a venv whose
    .pth names a folder holding links to this venv's installed torch stack."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base)], check=True)
    shelf = base / "torch-stack"
    shelf.mkdir()
    for name in TORCH_DISTS + tuple(d.metadata["Name"] for d in md.distributions()
                                    if wheelhouse.provided_by_torch(d.metadata["Name"] or "")):
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:  # e.g. opencv-python-headless where others have opencv-python
            continue
        for top in {Path(str(f)).parts[0] for f in dist.files or ()}:
            src = Path(dist.locate_file(top))
            if top != ".." and src.exists() and not (shelf / top).exists():
                (shelf / top).symlink_to(src)
    site = next((base / "lib").glob("python3*/site-packages"))
    (site / "torch_stack.pth").write_text(f"{shelf}\n")
    return base / "bin" / "python"


@pytest.fixture(scope="module")
def offline_target(tmp_path_factory):
    """(a torch-only Python, a wheelhouse made for it) — the wheelhouse needs the index once."""
    root = tmp_path_factory.mktemp("byo-torch")
    python = torch_only_python(root / "base")
    out = run([python, "-c", "import torch, torchvision; print(torch.__version__)"])
    assert out.returncode == 0 and out.stdout.strip() == torch.__version__, out.stderr
    out = run(["bash", TOOLS / "make_wheelhouse.sh", root / "wh", "--have-python", python, "--max-mib", "400"],
              timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    return python, root / "wh"


def test_offline_setup_over_an_existing_torch_imports_the_stack(offline_target, tmp_path):
    python, wh = offline_target
    venv = tmp_path / "venv"
    out = run(["bash", TOOLS / "setup_env.sh"], env={**OFFLINE, "DT_WHEELHOUSE": str(wh), "DT_VENV": str(venv),
                                                     "PYTHON": str(python)}, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "(no network)" in out.stdout and "using the torch PYTHON has" in out.stdout
    code = ("import torch, timm, mmengine, mmcv, mmcv.ops, mmdet, mmseg, pycocotools, submitit, backbones; "
            "print(torch.__file__); print(mmcv.__version__, mmdet.__version__, mmseg.__version__)")
    got = run([venv / "bin/python", "-c", code], env=OFFLINE)
    assert got.returncode == 0, got.stderr
    torch_file, versions = got.stdout.strip().splitlines()
    assert str(python.parent.parent / "torch-stack") in torch_file  # the base's torch, not a copy
    assert versions == "2.1.0 3.3.0 1.2.2"
    # only what was missing went into the venv: no torch, numpy or pillow of its own
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not list(site.glob("torch-*.dist-info")) and not list(site.glob("numpy-*.dist-info"))
    assert list(site.glob("mmengine-*.dist-info"))
    # a rerun with everything in place only checks
    again = run(["bash", TOOLS / "setup_env.sh"], env={**OFFLINE, "DT_WHEELHOUSE": str(wh), "DT_VENV": str(venv),
                                                       "PYTHON": str(python)}, timeout=600)
    assert again.returncode == 0 and "environment up to date" in again.stdout, again.stdout + again.stderr


def test_a_wheelhouse_that_lacks_a_package_is_named_in_one_line(offline_target, tmp_path):
    python, wh = offline_target
    partial = tmp_path / "wh"
    shutil.copytree(wh, partial)
    for f in partial.glob("mmengine-*.whl"):
        f.unlink()
    out = run(["bash", TOOLS / "setup_env.sh"], env={**OFFLINE, "DT_WHEELHOUSE": str(partial),
                                                     "DT_VENV": str(tmp_path / "venv"), "PYTHON": str(python)},
              timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr
    line = one_line(out.stderr)
    assert "has no wheel of mmengine" in line and str(partial) in line


# ------------------------------------------------------------ bad input --
@pytest.mark.parametrize("knobs, message", [
    ({"DT_TORCH": "conda"}, "DT_TORCH=conda: use DT_TORCH=system"),
    ({"DT_TORCH": "pinned", "DT_WHEELHOUSE": "/tmp"}, "goes with DT_TORCH=system"),
    ({"DT_WHEELHOUSE": "/nonexistent/wh"}, "DT_WHEELHOUSE=/nonexistent/wh: no such directory"),
    ({"DT_TORCH": "system", "PYTHON": "/nonexistent/python3"}, "PYTHON=/nonexistent/python3: no such interpreter"),
    ({"DT_VENV": "none"}, "DT_VENV=none goes with DT_TORCH=system"),
])
def test_setup_refuses_bad_torch_knobs_before_installing_anything(tmp_path, knobs, message):
    env = {"DT_CACHE": str(tmp_path), **({"DT_VENV": str(tmp_path / "venv")} if "DT_VENV" not in knobs else {}),
           **knobs}
    out = run(["bash", TOOLS / "setup_env.sh"], env=env, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in one_line(out.stderr) and not (tmp_path / "venv").exists()


def test_system_torch_needs_a_python_that_has_one(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    out = run(["bash", TOOLS / "setup_env.sh"], env={"DT_TORCH": "system", "PYTHON": str(bare / "bin/python"),
                                                     "DT_VENV": str(tmp_path / "venv"), "DT_CACHE": str(tmp_path)},
              timeout=120)
    assert out.returncode == 2
    assert f"no torch importable by {bare}/bin/python" in one_line(out.stderr) and not (tmp_path / "venv").exists()


def test_a_torch_outside_the_supported_range_is_named_with_the_range(monkeypatch, capsys):
    monkeypatch.setattr(torch, "__version__", "2.9.1+cu128")
    low, high = check_env.SUPPORTED_TORCH
    err = assert_fails_with(check_env.main, ["--torch-range"], capsys, "torch 2.9.1+cu128",
                            f"outside the supported range {low}-{high}")
    assert "tried:" in err
    monkeypatch.setattr(torch, "__version__", "2.14.1")
    assert check_env.main(["--torch-range", "--quiet"]) == 0


# ------------------------------------------------------- the GPU check --
def test_gpu_check_dry_run_plans_under_nine_minutes_on_16_cores(offline_target, tmp_path, monkeypatch, capsys):
    python, wh = offline_target
    monkeypatch.setenv("PYTHON", str(python))
    monkeypatch.setenv("MAX_JOBS", "16")
    assert gpu_check.main([str(tmp_path / "out"), "--dry-run", "--wheelhouse", str(wh)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "out/gpu_check.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == ["setup", "check_env", "gpu_tests", "transfer", "engine", "input_pipeline"]
    assert sum(s["budget_s"] for s in steps.values()) <= gpu_check.TOTAL_BUDGET_S == 540
    assert steps["setup"]["env"]["DT_TORCH"] == "system" and steps["setup"]["env"]["MAX_JOBS"] == "16"
    if not torch.cuda.is_available():
        assert all(s["status"] == "skipped" and "needs a GPU and none is visible" in s["reason"]
                   for s in steps.values() if s["needs_gpu"])
    assert "total" in printed and "budget" in printed
    assert "| setup | skipped (dry run) |" in (tmp_path / "out/summary.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_gpu_check_without_a_gpu_is_one_line(offline_target, tmp_path, monkeypatch, capsys):
    python, wh = offline_target
    monkeypatch.setenv("PYTHON", str(python))
    assert_fails_with(gpu_check.main, [tmp_path / "out", "--wheelhouse", wh], capsys, "no GPU visible to torch",
                      "--dry-run")
    assert not (tmp_path / "out").exists()


def test_gpu_check_names_a_missing_wheelhouse(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHON", sys.executable)
    assert_fails_with(gpu_check.main, [tmp_path / "out", "--dry-run", "--wheelhouse", tmp_path / "none"], capsys,
                      f"--wheelhouse {tmp_path / 'none'}: no such directory")

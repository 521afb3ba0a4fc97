"""The package layout's promises: one-way imports, the bottom layer and what reads
records without torch, the core without OpenMMLab, one error type reported the same
way by every entry point, style by ruff."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backbones.errors import UserError, one_line
from helpers import REPO, TINY, assert_fails_with
from pretrain.main import main as pretrain_main

# package -> packages it may import (core -> engine -> applications -> tools)
ALLOWED = {
    "common": {"common"},
    "records": {"common", "records"},
    "suite": {"common", "records", "suite"},
    "backbones": {"common", "backbones"},
    "training": {"common", "backbones", "records", "training"},
    "pretrain": {"common", "backbones", "records", "training", "pretrain"},
    "cls_finetune": {"common", "backbones", "records", "training", "cls_finetune", "demo_data"},
    "backbones/openmmlab": {"common", "backbones", "records"},
}
FIRST_PARTY = {"common", "backbones", "training", "pretrain", "cls_finetune", "demo_data", "records", "suite"}
# What reads records and runs the suite must work on a login node without the training stack.
TORCH_FREE = ["common", "records", "records.curves", "suite", "suite.spec", "suite.state", "suite.__main__",
              "suite.local", "suite.slurm"]
HEAVY = ("torch", "timm", "mmengine", "mmcv", "mmdet", "mmseg", "torchvision")


def imported_first_party(path):
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {(a.name.split(".")[0], a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add((node.module.split(".")[0], node.module))
    return {(top, full) for top, full in out if top in FIRST_PARTY}


@pytest.mark.parametrize("package", sorted(p for p in ALLOWED if (REPO / p).is_dir()))
def test_imports_point_one_way(package):
    for path in sorted((REPO / package).rglob("*.py")):
        if package == "backbones" and "openmmlab" in path.parts:
            continue  # the adapter is an application beside the core it adapts (its own entry)
        bad = {full for top, full in imported_first_party(path) if top not in ALLOWED[package]}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_no_module_imports_a_command_line_module():
    for path in [*REPO.glob("cls_finetune/*.py"), *REPO.glob("tools/*.py"), *REPO.glob("training/*.py")]:
        assert "pretrain.main" not in {full for _, full in imported_first_party(path)}, path


def test_records_and_the_runner_import_without_torch():
    code = (f"import sys; import {', '.join(TORCH_FREE)}; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing {', '.join(TORCH_FREE)} loads {out.stdout.strip()}"


def test_the_core_imports_without_openmmlab():
    code = ("import sys, backbones; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mmengine', 'mmcv', 'mmdet')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("imports", [["backbones.openmmlab"], ["backbones"]])
def test_configs_find_the_adapter_through_custom_imports(imports, tmp_path):
    # New configs import the adapter by name; configs written before it had one still work.
    code = ("from mmengine.utils import import_modules_from_strings; "
            f"import_modules_from_strings({imports!r}); "
            "from mmdet.registry import MODELS; from mmengine.registry import HOOKS; "
            "print(MODELS.get('TimmDropBackbone').__name__, HOOKS.get('DropScheduleHook').__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["TimmDropBackbone", "DropScheduleHook"]


def test_every_user_error_is_one_user_error_type():
    from backbones.checkpoint import CheckpointError
    from backbones.drop_sites import NoDropSitesError
    from backbones.models import UnknownModelError
    from mm_launch import LaunchError
    from training.config import ConfigError
    from training.data import DataError
    from training.engine import NonFiniteLossError
    for cls in (CheckpointError, NoDropSitesError, UnknownModelError, LaunchError, ConfigError, DataError,
                NonFiniteLossError):
        assert issubclass(cls, UserError), cls


def test_an_error_from_a_dataloader_worker_keeps_only_its_message():
    wrapped = UserError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1\ntraining.data.DataError: corrupt image a.png: bad")
    assert one_line(wrapped) == "corrupt image a.png: bad"
    assert one_line(UserError("--lr -1 must be positive")) == "--lr -1 must be positive"


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path, small_imagenet, capsys):
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    assert_fails_with(pretrain_main, [*TINY, "--data_path", small_imagenet, "--epochs", "1",
                                      "--output_dir", taken], capsys, f"--output_dir {taken}", "is a file")
    assert taken.read_text() == "not a directory"


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert ruff, "ruff is missing from the venv: tools/setup_env.sh installs it from requirements.txt"
    out = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:]

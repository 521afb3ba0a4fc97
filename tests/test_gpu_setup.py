"""mmcv with CUDA ops on GPU machines (issue 13): the build plan of
tools/mmcv_build_plan.py from simulated torch / GPU / toolkit inputs (no build),
the device check of tools/check_env.py, and, where a GPU is visible, mmcv's ops
and one Mask R-CNN training iteration on it."""
import importlib.util
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import REPO

TOOLS = REPO / "tools"


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"dt_tools_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


plan_tool, check_env = _tool("mmcv_build_plan"), _tool("check_env")
PlanError = plan_tool.PlanError
CPU_KEY = "mmcv-2.1.0-torch2.14.1-cp311-x86_64"  # the cache dir of every CPU build so far
no_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU is visible to torch here")


def plan(env=None, gpus=(), torch_cuda="13.0", **kw):
    kw.setdefault("toolkit_version", "13.0.3.0")
    return plan_tool.make_plan(torch_version=f"2.14.1+cu{torch_cuda.replace('.', '')}" if torch_cuda
                               else "2.14.1+cpu", torch_cuda=torch_cuda, gpus=list(gpus), env=env or {},
                               site_packages="/venv/site", **kw)


def run(args, env=None, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, **kw)


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# ------------------------------------------------------------- build plan --
def test_a_machine_without_gpu_keeps_the_cpu_build_and_its_cache_dir():
    p = plan()
    assert (p.mode, p.wheel_key, p.toolkit, p.arch_list) == ("cpu", CPU_KEY, "", "")
    assert "no GPU visible" in p.reason


def test_a_cpu_only_torch_gets_cpu_ops_even_beside_a_gpu():
    assert plan(gpus=["9.0"], torch_cuda=None).mode == "cpu"
    with pytest.raises(PlanError, match="CPU-only build"):
        plan({"DT_MMCV_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "9.0"}, torch_cuda=None)


def test_a_gpu_machine_builds_cuda_ops_for_its_gpus_with_pips_nvcc():
    p = plan(gpus=["9.0", "8.0", "9.0"])
    assert (p.mode, p.cuda_version, p.arch_list) == ("cuda", "13.0", "8.0;9.0")
    assert p.wheel_key == CPU_KEY + "-cu130-sm80_sm90"
    # no system toolkit: the wheels at the version torch itself pulled in
    assert p.toolkit == "wheels" and p.toolkit_spec == "cuda-toolkit[nvcc,cccl,crt]==13.0.3.0"
    assert p.toolkit_root == os.path.join("/venv/site", "nvidia", "cu13")
    assert plan(gpus=["9.0"], toolkit_version=None).toolkit_spec == "cuda-toolkit[nvcc,cccl,crt]==13.0.*"
    assert plan(gpus=["9.0"], toolkit_version="12.8.1").toolkit_spec.endswith("==13.0.*")


def test_torch_cuda_arch_list_wins_over_the_gpus_and_is_normalised():
    p = plan({"TORCH_CUDA_ARCH_LIST": "9.0+PTX 8.6;8.6"}, gpus=["8.0"])
    assert p.arch_list == "8.6;9.0+PTX" and p.wheel_key.endswith("-cu130-sm86_sm90ptx")
    assert "TORCH_CUDA_ARCH_LIST" in p.reason


def test_explicit_mode_builds_cuda_ops_without_a_gpu():
    p = plan({"DT_MMCV_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "9.0"})
    assert (p.mode, p.arch_list, p.wheel_key) == ("cuda", "9.0", CPU_KEY + "-cu130-sm90")
    assert plan({"DT_MMCV_CUDA": "1"}, gpus=["8.6"]).arch_list == "8.6"  # the GPUs when no list is given


@pytest.mark.parametrize("env, message", [
    ({"DT_MMCV_CUDA": "1"}, "DT_MMCV_CUDA=1 needs TORCH_CUDA_ARCH_LIST (e.g. TORCH_CUDA_ARCH_LIST=9.0) "
                            "when no GPU is visible"),
    ({"DT_MMCV_CUDA": "yes"}, "DT_MMCV_CUDA='yes': use DT_MMCV_CUDA=1"),
    ({"DT_MMCV_CUDA": "0"}, "DT_MMCV_CUDA='0'"),
    ({"DT_MMCV_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "Hopper"}, "'Hopper' is not a compute capability"),
    ({"DT_MMCV_CUDA": "1", "TORCH_CUDA_ARCH_LIST": " ;"}, "TORCH_CUDA_ARCH_LIST is empty"),
])
def test_bad_knobs_are_refused(env, message):
    with pytest.raises(PlanError) as err:
        plan(env)
    assert message in str(err.value)


def test_an_arch_list_the_cpu_build_never_uses_is_not_checked():
    assert plan({"TORCH_CUDA_ARCH_LIST": "Hopper"}).mode == "cpu"


def test_a_system_toolkit_is_used_only_when_it_matches_torchs_cuda():
    p = plan(gpus=["9.0"], system_cuda=[("/opt/cuda-12.4", "12.4"), ("/usr/local/cuda", "13.0")])
    assert (p.toolkit, p.cuda_home, p.toolkit_spec) == ("system", "/usr/local/cuda", "")
    assert any("/opt/cuda-12.4" in n and "12.4" in n for n in p.notes)
    p = plan(gpus=["9.0"], system_cuda=[("/usr/local/cuda", "12.8"), ("/opt/broken", None)])
    assert p.toolkit == "wheels" and len(p.notes) == 2
    # Before CUDA 13 the pip toolkit has another layout: only a system toolkit will do.
    assert plan(gpus=["8.0"], torch_cuda="12.8", system_cuda=[("/usr/local/cuda", "12.8")]).toolkit == "system"
    with pytest.raises(PlanError, match="set CUDA_HOME to a CUDA 12.8 install"):
        plan(gpus=["8.0"], torch_cuda="12.8")


def test_system_toolkits_are_found_in_torchs_order_and_must_be_real(tmp_path):
    def fake(home, release=None, headers=True):
        (home / "bin").mkdir(parents=True)
        body = f"echo 'Cuda compilation tools, release {release}, V{release}.1'" if release else \
            f"exec {tmp_path}/cuda-12.4/bin/nvcc \"$@\""
        (home / "bin/nvcc").write_text(f"#!/bin/sh\n{body}\n")
        (home / "bin/nvcc").chmod(0o755)
        if headers:
            (home / "include").mkdir()
            (home / "include/cuda_runtime.h").write_text("")
        return home
    real = fake(tmp_path / "cuda-12.4", "12.4")
    # like /usr/local/bin/nvcc, a wrapper script: torch would guess its parent, which has no headers
    wrapper = fake(tmp_path / "local", headers=False)
    env = {"CUDA_HOME": str(real), "PATH": str(wrapper / "bin")}
    found = plan_tool.system_cuda_candidates(env)
    assert found[0] == str(real) and str(wrapper) not in found
    assert plan_tool.nvcc_release(str(real)) == "12.4" and plan_tool.nvcc_release(str(tmp_path)) is None


def _tree(root, files):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _toolkit(root, headers=(), libs=("lib64/libcudart.so.13",), extra=None):
    tk = _tree(root, {"bin/nvcc": "", "include/cuda_runtime.h": "toolkit", "nvvm/libdevice.bc": "",
                      **{f"include/{h}": "" for h in headers}, **{lib: "" for lib in libs}, **(extra or {})})
    (tk / "bin/nvcc").chmod(0o755)
    return tk


def test_the_builds_cuda_home_adds_the_library_headers_an_nvcc_only_toolkit_lacks(tmp_path, monkeypatch):
    # Like this image's /usr/local/cuda (nvcc, crt, CCCL, runtime; no cuSPARSE/cuBLAS headers)
    # beside the pip packages torch came with, which have them (the first CUDA build here failed
    # on '#include <cusparse.h>' in torch's CUDAContextLight.h).
    toolkit = _toolkit(tmp_path / "cuda-13.0")
    (toolkit / "include/cusparse.h").symlink_to(tmp_path / "nowhere.h")  # a broken link must not win
    _tree(tmp_path / "site", {"nvidia/cu13/include/cuda_runtime.h": "torch's",
                              **{f"nvidia/cu13/include/{h}": "torch's" for h in plan_tool.TORCH_CUDA_HEADERS},
                              "nvidia/cu13/lib/libcusparse.so.12": ""})
    monkeypatch.chdir(tmp_path)  # relative paths, as a user may type them
    home, found = plan_tool.compose_cuda_home("home", "cuda-13.0", "site")
    home = Path(home)
    assert home == tmp_path / "home" and sorted(found) == sorted(plan_tool.TORCH_CUDA_HEADERS)
    assert (home / "include/cuda_runtime.h").read_text() == "toolkit"  # the toolkit's own files win
    assert all((home / "include" / h).read_text() == "torch's" for h in plan_tool.TORCH_CUDA_HEADERS)
    assert os.readlink(home / "lib64/libcudart.so") == "libcudart.so.13"
    assert (home / "bin/nvcc").exists() and (home / "nvvm/libdevice.bc").exists()
    with pytest.raises(PlanError, match="exists and is not an empty directory"):
        plan_tool.compose_cuda_home("home", "cuda-13.0", "site")  # never mixed with an earlier toolkit
    with pytest.raises(PlanError, match="cusparse.h.* neither in .*: torch's CUDA headers include them"):
        plan_tool.compose_cuda_home("home2", "cuda-13.0", "empty-site")


def test_a_complete_toolkit_is_its_own_cuda_home(tmp_path):
    headers = plan_tool.TORCH_CUDA_HEADERS
    site = tmp_path / "site"
    full = _toolkit(tmp_path / "full", headers, libs=("lib64/libcudart.so.13", "lib64/libcudart.so"))
    assert plan_tool.compose_cuda_home(str(tmp_path / "h1"), str(full), str(site)) == (str(full), [])
    # A distribution's toolkit (Debian: /usr, the runtime on the linker's default path) also.
    usr = _toolkit(tmp_path / "usr", headers, libs=(), extra={"lib/x86_64-linux-gnu/libcudart.so.12": ""})
    assert plan_tool.compose_cuda_home(str(tmp_path / "h2"), str(usr), str(site)) == (str(usr), [])
    # Complete but for the unversioned runtime (pip's layout): only that is added.
    pip_like = _toolkit(tmp_path / "cu13", headers, libs=("lib/libcudart.so.13",))
    home, found = plan_tool.compose_cuda_home(str(tmp_path / "h3"), str(pip_like), str(site))
    assert home == str(tmp_path / "h3") and found == []
    assert os.readlink(tmp_path / "h3/lib64/libcudart.so") == "libcudart.so.13"

    def cli(*args):
        return run([sys.executable, TOOLS / "mmcv_build_plan.py", *args])
    res = cli("--compose-cuda-home", tmp_path / "h4", "--toolkit-dir", full)
    assert res.returncode == 0 and res.stdout.strip() == str(full)
    for args, message in ((("--compose-cuda-home", tmp_path / "h5", "--toolkit-dir", tmp_path / "nowhere"),
                           "no nvcc in"),
                          (("--compose-cuda-home", full / "bin/nvcc", "--toolkit-dir", pip_like),
                           "not an empty directory"),
                          (("--toolkit-dir", full), "--toolkit-dir goes with --compose-cuda-home")):
        res = cli(*args)
        assert res.returncode == 2 and message in one_line(res.stderr), res.stderr


def test_cache_keys_never_mix_cpu_and_cuda_wheels():
    keys = {plan().wheel_key, plan(gpus=["9.0"]).wheel_key, plan(gpus=["8.0"]).wheel_key,
            plan(gpus=["8.0", "9.0"]).wheel_key, plan(gpus=["9.0"], torch_cuda="13.1").wheel_key,
            plan({"TORCH_CUDA_ARCH_LIST": "9.0+PTX"}, gpus=["9.0"]).wheel_key}
    assert len(keys) == 6 and CPU_KEY in keys


def test_the_expected_build_time_is_an_estimate_that_scales():
    import re

    def minutes(text):
        return int(re.search(r"about (\d+) min with", text).group(1))
    one = plan(gpus=["9.0"]).estimate
    assert "with 2 compile job(s) for 1 arch(s)" in one and "estimate" in one
    # a calibration check: the model reproduces the measured build (29 min, one arch, 2 cores)
    assert abs(minutes(one) - 29) <= 2
    six = plan({"TORCH_CUDA_ARCH_LIST": "7.5;8.0;8.6;9.0;10.0;12.0+PTX"}, gpus=["9.0"]).estimate
    assert "for 6 arch(s)" in six and 1.8 * minutes(one) < minutes(six) < 6 * minutes(one)
    assert minutes(plan(gpus=["9.0"], jobs=8).estimate) < minutes(one) / 3  # (above the 5-min floor)


def test_plan_cli_prints_shell_values_from_simulated_inputs():
    sim = ["--torch-version", "2.14.1+cu130", "--torch-cuda", "13.0", "--gpus", "9.0,8.0",
           "--system-cuda", "none", "--toolkit-version", "13.0.3.0", "--jobs", "2"]
    out = run([sys.executable, TOOLS / "mmcv_build_plan.py", "--shell", *sim], env={"DT_MMCV_CUDA": ""})
    assert out.returncode == 0, out.stderr
    values = dict(line.split("=", 1) for line in out.stdout.splitlines())
    values = {k: shlex.split(v)[0] if shlex.split(v) else "" for k, v in values.items()}
    assert values["MMCV_MODE"] == "cuda" and values["MMCV_ARCH_LIST"] == "8.0;9.0"
    assert values["MMCV_WHEEL_KEY"].startswith("mmcv-2.1.0-torch2.14.1-")
    assert values["MMCV_WHEEL_KEY"].endswith("-cu130-sm80_sm90")
    assert values["MMCV_TOOLKIT_SPEC"] == "cuda-toolkit[nvcc,cccl,crt]==13.0.3.0"
    # bash evaluates it to the same values (what setup_env.sh does)
    shell = run(["bash", "-c", 'eval "$(cat)"; echo "$MMCV_MODE|$MMCV_PLAN_TEXT"'], input=out.stdout)
    assert shell.stdout.startswith("cuda|mmcv ops: CPU and CUDA 13.0 for 8.0;9.0")

    bad = run([sys.executable, TOOLS / "mmcv_build_plan.py", "--shell", *sim],
              env={"DT_MMCV_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "sm_90"})
    assert bad.returncode == 2 and bad.stdout == ""
    assert "'sm_90' is not a compute capability" in one_line(bad.stderr)


def test_plan_cli_probes_this_machine():
    env = {"DT_MMCV_CUDA": "", "TORCH_CUDA_ARCH_LIST": ""}
    out = run([sys.executable, TOOLS / "mmcv_build_plan.py", "--json"], env=env)
    assert out.returncode == 0, out.stderr
    import json
    p = json.loads(out.stdout)
    key = (f"mmcv-2.1.0-torch{torch.__version__.split('+')[0]}-cp{sys.version_info[0]}{sys.version_info[1]}-"
           f"{platform.machine()}")
    if torch.version.cuda and torch.cuda.is_available():
        assert p["mode"] == "cuda" and p["wheel_key"].startswith(key + "-cu")
    else:
        assert p["mode"] == "cpu" and p["wheel_key"] == key  # the setup keeps using the old cache dir


@pytest.mark.skipif(plan_tool.gpus_maybe_visible(), reason="a GPU may be visible: the early check defers to torch")
@pytest.mark.parametrize("knobs, message", [
    ({"DT_MMCV_CUDA": "1", "TORCH_CUDA_ARCH_LIST": ""}, "DT_MMCV_CUDA=1 needs TORCH_CUDA_ARCH_LIST"),
    ({"DT_MMCV_CUDA": "on"}, "DT_MMCV_CUDA='on'"),
])
def test_setup_refuses_bad_knobs_before_installing_anything(tmp_path, knobs, message):
    venv = tmp_path / "venv"
    out = run(["bash", TOOLS / "setup_env.sh"], env={**knobs, "DT_VENV": str(venv), "DT_CACHE": str(tmp_path)},
              timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in one_line(out.stderr) and not venv.exists()


# ------------------------------------------------------------ device check --
def test_mmcv_ops_pass_on_the_cpu():
    assert check_env.mmcv_ops_problems(["cpu"]) == []


def test_check_env_is_importable_from_the_tools_dir():
    code = "import check_env; print(check_env.mmcv_ops_problems(['cpu']), check_env.default_devices()[0])"
    out = run([sys.executable, "-c", code], env={"PYTHONPATH": str(TOOLS)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: CUDA ops can be checked there")
def test_asking_for_cuda_without_a_gpu_fails_in_one_line():
    out = run([sys.executable, TOOLS / "check_env.py", "--quiet", "--device", "cpu", "--device", "cuda"])
    assert out.returncode == 1
    line = one_line(out.stderr)
    assert "cuda: no GPU is visible to torch" in line and "cannot be checked or used here" in line


def test_a_device_torch_does_not_know_is_bad_input():
    out = run([sys.executable, TOOLS / "check_env.py", "--quiet", "--device", "gpu0"])
    assert out.returncode == 2
    assert one_line(out.stderr).startswith("[check] --device gpu0:")


def test_a_device_mmcv_has_no_kernels_for_is_reported_in_one_line():
    # torch's meta device always exists and mmcv has no kernel for it: the same
    # dispatch failure a CPU-only mmcv gives on cuda:0 ("implementation ... not found").
    problems = check_env.mmcv_ops_problems(["meta"])
    assert len(problems) == 1 and problems[0].startswith("mmcv ops on meta: ")
    assert "not found" in problems[0] and "\n" not in problems[0]


def _cpu_only_mmcv():
    from mmcv.ops import get_compiling_cuda_version
    return not get_compiling_cuda_version()[:1].isdigit()


def test_a_gpu_machine_with_a_cpu_only_mmcv_gets_the_fix_in_one_line(monkeypatch):
    if not _cpu_only_mmcv():
        pytest.skip("this mmcv has CUDA ops")
    # What a GPU machine looks like to the check; it stops before touching a GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_env.default_devices() == ["cpu", "cuda"]
    problems = check_env.mmcv_ops_problems(None)
    assert len(problems) == 1, problems
    assert "was built without CUDA ops, so Mask R-CNN (mmcv.ops.nms, RoIAlign) cannot run on cuda" in problems[0]
    assert problems[0].endswith("tools/setup_env.sh") and "\n" not in problems[0]
    assert check_env.mmcv_ops_problems(["cuda:3"]) == ["cuda:3: torch sees only 1 GPU(s)"]


def test_expecting_a_cuda_build_checks_the_extension_without_a_gpu():
    import mmcv._ext
    sections = check_env.elf_section_names(mmcv._ext.__file__)
    assert ".text" in sections and ".dynsym" in sections
    if shutil.which("readelf"):
        listing = run(["readelf", "-SW", mmcv._ext.__file__]).stdout
        assert all(name in listing for name in sections if name)
    if _cpu_only_mmcv():
        assert ".nv_fatbin" not in sections
        out = run([sys.executable, TOOLS / "check_env.py", "--quiet", "--expect-mmcv-cuda", "13.0"])
        assert out.returncode == 1
        assert "mmcv was built without CUDA ops, expected a CUDA 13.0 build" in one_line(out.stderr)
    else:
        assert ".nv_fatbin" in sections


# ----------------------------------------------------------------- on a GPU --
@no_gpu
def test_mmcv_ops_on_the_gpu_match_the_cpu():
    from mmcv.ops import nms, roi_align
    assert check_env.mmcv_ops_problems(["cuda"]) == []
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + torch.rand(300, 2, generator=g) * 30 + 1], dim=1)
    scores = torch.rand(300, generator=g)
    _, keep_cpu = nms(boxes, scores, iou_threshold=0.5)
    _, keep_gpu = nms(boxes.cuda(), scores.cuda(), iou_threshold=0.5)
    assert keep_gpu.device.type == "cuda" and keep_gpu.cpu().tolist() == keep_cpu.tolist()

    feats = torch.randn(2, 8, 32, 32, generator=g)
    corners = torch.rand(40, 2, generator=g) * 24
    rois = torch.cat([torch.randint(0, 2, (40, 1), generator=g).float(), corners,
                      corners + torch.rand(40, 2, generator=g) * 8 + 0.5], dim=1)
    grads = []
    for device in ("cpu", "cuda"):
        x = feats.to(device).requires_grad_()
        out = roi_align(x, rois.to(device), (7, 7), 0.5, 2, "avg", True)
        out.backward(torch.ones_like(out))
        grads.append((out.detach().cpu(), x.grad.cpu()))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-4)


def mask_rcnn_iteration(device, data_root):
    """One training step of the demo Mask R-CNN config on ``device``; returns the losses."""
    from mmdet.registry import DATASETS, MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import OptimWrapper
    from mmengine.utils import import_modules_from_strings

    from demo_data import write_coco
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(REPO / "det_configs/demo/mask-rcnn_vit-demo_fpn_coco-demo.py"))
    import_modules_from_strings(cfg.custom_imports["imports"])
    write_coco(data_root, train_images=2, val_images=1, size=128, seed=5)
    cfg.model.backbone.init_cfg = None  # random weights: the step, not the transfer, is under test
    cfg.model.backbone.model_kwargs.depth = 2
    model = MODELS.build(cfg.model).to(device)
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = f"{data_root}/"
    dataset = DATASETS.build(dataset_cfg)
    batch = pseudo_collate([dataset[0], dataset[1]])
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    before = next(model.backbone.parameters()).detach().clone()
    losses = model.train_step(batch, optim)
    after = next(model.backbone.parameters()).detach()
    assert after.device.type == torch.device(device).type
    assert not torch.equal(before, after), "the step did not update the backbone"
    return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()}


@no_gpu
def test_mask_rcnn_trains_one_iteration_on_the_gpu(tmp_path):
    import math
    losses = mask_rcnn_iteration("cuda", tmp_path / "coco")
    for key in ("loss_rpn_cls", "loss_cls", "loss_bbox", "loss_mask"):
        assert math.isfinite(losses[key]), losses

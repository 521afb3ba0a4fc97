"""The suite runner (python -m suite): the suite file's checks, the paper's and the
demo's matrices, and the local executor end to end on tiny runs (skip finished,
failures kept to their own dependents, --failed, stale runs). The Slurm executor:
tests/test_suite_slurm.py."""
import json
import os
import shutil
import textwrap

import pytest
import torch

from demo_data import write_imagenet, write_transfer
from helpers import REPO
from suite import load_suite
from suite.__main__ import main
from suite.launch import command
from suite.spec import STAGES

# A 2-block ViT at 64x64, one epoch: a few seconds a run (mostly the interpreter starting).
TINY_PRETRAIN = ["--model_kwargs", "{depth: 2, patch_size: 8, embed_dim: 96, num_heads: 3}", "--input_size", "64",
                 "--epochs", "1", "--batch_size", "16", "--num_workers", "0", "--tensorboard", "false",
                 "--print_freq", "0"]
TINY_CLS = ["--epochs", "1", "--batch_size", "16", "--num_workers", "0", "--tensorboard", "false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite_data")
    write_imagenet(root / "imagenet", train_per_class=4, val_per_class=1, size=64, seed=3)
    write_transfer(root / "transfer", train_per_class=4, test_per_class=2, size=64, seed=1)
    return root


def tiny_suite(path, data, output_root, b_flags="[--model, no_such_model]", cls_seeds="[0]"):
    """Two pretraining runs (``b`` fails with ``b_flags``) and fine-tuning from each."""
    path.write_text(textwrap.dedent(f"""\
        output_root: {output_root}
        resources: {{cpus_per_task: 1, time: 15}}
        pretrain:
          architectures:
            tiny:
              - {{name: a, preset: demo_cpu}}
              - {{name: b, preset: demo_cpu, flags: {b_flags}}}
          data: {data / 'imagenet'}
          flags: {json.dumps(TINY_PRETRAIN)}
        cls:
          recipes: {{finetune: cls_configs/demo_cpu.yaml}}
          datasets: {{transfer: cls_configs/_base_/demo_data.yaml}}
          data: {data / 'transfer'}
          seeds: {cls_seeds}
          flags: {json.dumps(TINY_CLS)}
        """))
    return path


def run(argv, capsys):
    """``python -m suite argv`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def table(out):
    """key -> (state, detail) from status's table."""
    rows = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and "/seed" in parts[0]:
            rest = parts[1]
            state = next(s for s in ("not started", "done", "stale", "unreadable", "running", "queued", "failed")
                         if rest.startswith(s))
            rows[parts[0]] = (state, rest[len(state):].strip())
    return rows


# ---- the suite file -----------------------------------------------------------------------

PRE = "pretrain: {architectures: {vit: [demo_cpu]}}\n"
DET = "det_configs/demo/mask-rcnn_vit-demo_fpn_coco-demo.py"


@pytest.mark.parametrize("text, fragment", [
    ("output_root: o\n" + PRE + "detection: {}\n", "unknown stage or key 'detection'"),
    ("output_root: o\npretrain: {architectures: {vit: [demo_cpu]}, seed: [0]}\n", "pretrain: unknown key 'seed'"),
    ("output_root: o\npretrain: {architectures: {vit: [no_such_preset]}}\n",
     "pretrain.architectures.vit: no preset 'no_such_preset' (pretrain_configs/no_such_preset.yaml does not exist)"),
    ("output_root: o\n" + PRE + "det: {tasks: {t: {vit: det_configs/demo/nope.py}}}\n",
     "det.tasks.t.vit: config det_configs/demo/nope.py does not exist"),
    ("output_root: o\n" + PRE + f"det: {{tasks: {{t: {{mixer: {DET}}}}}}}\n",
     "det.tasks.t: architecture 'mixer' has no pretraining in the file"),
    ("output_root: o\ncls: {recipes: {f: cls_configs/demo_cpu.yaml}, datasets: {d: cls_configs/demo_cpu.yaml}}\n",
     "the file has no pretrain stage"),
    ("output_root: o\n" + PRE + f"seg: {{tasks: {{t: {{vit: {DET}}}}}, pretrain_seed: 3}}\n",
     "seg.pretrain_seed: seed 3 is not among pretrain.seeds [0]"),
    ("output_root: o\npretrain: {architectures: {vit: [demo_cpu]}, flags: [--output_dir, x]}\n",
     "pretrain.flags: --output_dir is set by the suite"),
    ("output_root: o\npretrain: {architectures: {vit: [demo_cpu]}, resources: {gpus_per_job: 3, nodes: 2}}\n",
     "gpus_per_job 3 does not split evenly over 2 nodes"),
    ("output_root: o\npretrain: {architectures: {vit: [demo_cpu]}, resources: {time: soon}}\n",
     "pretrain.resources.time: time 'soon' is neither minutes nor [D-]HH:MM[:SS]"),
    ("output_root: o\npretrain: {architectures: {vit: [demo_cpu, demo_cpu]}}\n",
     "pretraining 'demo_cpu' is listed twice"),
    ("output_root: o\npretrain: {architectures: {vit: [demo_cpu]}\n", "not valid YAML"),
    ("- just a list\n", "expected a mapping of output_root, resources, pretrain"),
    ("output_root: o\npretrain: {architectures: {vit: [demo_cpu]}, flags: --epochs 1}\n",
     "pretrain.flags: expected a list of strings or numbers"),
    ("output_root: o\npretrain: {architectures: [vit]}\n", "pretrain.architectures: expected a non-empty mapping"),
])
def test_bad_suite_files_fail_in_one_line_before_anything_runs(text, fragment, tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    code, out, err = run(["run", path], capsys)
    assert code == 2 and out == "", out
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"error: suite file {path}") and fragment in err, err
    assert not (tmp_path / "o").exists()


def test_slurm_times_are_read_as_slurm_means_them(tmp_path):
    # YAML 1.1 reads an unquoted 24:00:00 as the base-60 integer 86400 (minutes, here): not in a suite file.
    path = tmp_path / "suite.yaml"
    path.write_text("output_root: o\npretrain: {architectures: {vit: [demo_cpu]}, "
                    "resources: {time: 24:00:00, gpus_per_job: 16, nodes: 2}}\n")
    res = load_suite(path).jobs[0].resources
    assert (res.time_min, res.tasks_per_node, res.gpus_per_node, res.tasks) == (24 * 60, 8, 8, 16)


def test_no_reachable_slurm_is_one_line_saying_where_it_looked(tmp_path, capsys, monkeypatch):
    path = tmp_path / "suite.yaml"
    path.write_text("output_root: o\n" + PRE)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sinfo anywhere
    code, _, err = run(["run", path, "--executor", "slurm"], capsys)
    assert code == 2 and err.strip() == "error: --executor slurm: no Slurm reachable: sinfo is not on PATH"
    monkeypatch.undo()
    if shutil.which("sinfo") is None or os.path.exists("/etc/slurm/slurm.conf"):
        pytest.skip("needs Slurm's client tools and no system-wide slurm.conf")
    monkeypatch.delenv("SLURM_CONF", raising=False)
    code, _, err = run(["run", path, "--executor", "slurm"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: --executor slurm: no Slurm reachable: sinfo failed (SLURM_CONF unset, so "
                          "/etc/slurm/slurm.conf): sinfo: fatal:"), err
    assert not (tmp_path / "o").exists()


def test_gpu_jobs_on_a_machine_without_them_are_refused(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    # (output_root under tmp_path: the refused runner has taken the output root's lock, as every run does)
    path.write_text(f"output_root: {tmp_path / 'o'}\npretrain: {{architectures: {{vit: [demo_cpu]}}, "
                    "resources: {gpus_per_job: 8}}\n")
    code, _, err = run(["run", path, "--gpus", "2"], capsys)
    assert code == 2 and "pretrain jobs ask for 8 GPUs (gpus_per_job) and this machine has 2 usable" in err, err
    code, out, err = run(["run", path, "--gpus", "2", "--dry_run"], capsys)  # the plan says so instead
    assert code == 0 and "note: the local executor would refuse this: pretrain jobs ask for 8 GPUs" in out
    assert "torch.distributed.run --standalone --nproc_per_node=8 -m pretrain" in out


# ---- the shipped matrices -------------------------------------------------------------------

def test_paper_matrix_covers_every_stage_and_each_transfer_waits_for_its_checkpoint(tmp_path, capsys):
    suite = load_suite(REPO / "suites/paper.yaml")
    jobs = suite.by_key()
    stages = {s: [j for j in suite.jobs if j.stage == s] for s in STAGES}
    transferred = {j.pretrain for j in stages["cls"]}
    assert len(jobs) == len(suite.jobs) and all(stages.values())
    # det: 2 schedules, seg: 1, for every transferred run of the three backbones mmdet/mmseg take; 3 seeds each
    mm = [n for n in transferred if jobs[f"pretrain/{n}/seed0"].arch in ("vit_tiny", "swin_femto", "convnext_femto")]
    assert len(stages["det"]) == 2 * len(mm) * 3 and len(stages["seg"]) == len(mm) * 3
    assert {j.resources.gpus_per_job for j in suite.jobs} == {8, 32}
    for job in suite.jobs:
        assert job.run_dir == suite.output_root / job.key and job.key.endswith(f"/seed{job.seed}")
        if job.stage == "pretrain":
            assert job.depends_on is None and job.resources.tasks == 32 and job.resources.nodes == 4
            continue
        dep = jobs[job.depends_on]
        assert dep.stage == "pretrain" and dep.pretrain == job.pretrain
        assert job.checkpoint == dep.run_dir / "weights.pth"
        if job.stage in ("det", "seg"):  # the checkpoint and seed go to mmengine, one config per architecture
            assert f"model.backbone.init_cfg.checkpoint={job.checkpoint}" in job.argv
            assert f"randomness.seed={job.seed}" in job.argv and "--resume" in job.argv
            assert job.arch.replace("_", "-") in job.argv[0]
    # One process per GPU: srun starts the tasks on Slurm, torchrun on one machine; mmengine is told which.
    det = jobs["det/mask-rcnn_1x/vit_tiny_no_dropout/seed0"]
    on_slurm, here = command(det, "slurm"), command(det, "torchrun")
    assert "torch.distributed.run" not in on_slurm and on_slurm[on_slurm.index("--launcher") + 1] == "slurm"
    assert on_slurm.index("--launcher") < on_slurm.index("--cfg-options")  # which takes every word after it
    assert "--nproc_per_node=8" in here and here[here.index("--launcher") + 1] == "pytorch"
    # The plan: every job, what it waits for, and nothing written.
    code, out, _ = run(["run", REPO / "suites/paper.yaml", "--dry_run", "--only",
                        "det/mask-rcnn_3x/swin_femto_early_sd", "--output_root", tmp_path / "paper"], capsys)
    assert code == 0 and not (tmp_path / "paper").exists()
    assert out.count(": would run") == 4  # three seeds and the pretraining they start from
    assert "det/mask-rcnn_3x/swin_femto_early_sd/seed2: would run after pretrain/swin_femto_early_sd/seed0" in out
    assert "[32 GPUs on 4 nodes, 10 cpu/task, 3-00:00:00]" in out


def test_demo_matrix_is_what_the_demo_ran(tmp_path):
    suite = load_suite(REPO / "suites/demo.yaml")
    assert [j.key for j in suite.jobs if j.stage == "pretrain"] == ["pretrain/no_dropout/seed0",
                                                                    "pretrain/early_dropout/seed0"]
    assert {j.key.rsplit("/", 2)[0] for j in suite.jobs if j.is_transfer} == {
        "det/demo", "seg/demo", "cls/finetune/transfer", "cls/linear_probe/transfer", "cls/fixed_feature/transfer"}
    early = suite.by_key()["pretrain/early_dropout/seed0"].argv
    assert " ".join(early).count("--dropout 0.1 --drop_mode early --drop_schedule linear --cutoff_epoch 3") == 1
    assert "--diag_every" in early and all(j.resources.gpus_per_job == 0 for j in suite.jobs)


# ---- the local executor -----------------------------------------------------------------------

def test_local_runs_dependencies_first_keeps_failures_to_their_dependents_and_reports_stale(data, tmp_path, capsys):
    path = tiny_suite(tmp_path / "suite.yaml", data, tmp_path / "out")
    code, out, err = run(["run", path], capsys)
    assert code == 1, out + err
    assert out.index("start pretrain/a/seed0") < out.index("done pretrain/a/seed0") < out.index(
        "start cls/finetune/transfer/a/seed0")
    code, out, _ = run(["status", path], capsys)
    rows = table(out)
    assert rows["pretrain/a/seed0"][0] == rows["cls/finetune/transfer/a/seed0"][0] == "done"
    state, detail = rows["pretrain/b/seed0"]  # the failure, its error line and its log
    log = tmp_path / "out/.suite/jobs/pretrain/b/seed0/log.txt"
    assert state == "failed" and detail.startswith("exit 2: error: unknown model 'no_such_model'"), detail
    assert f"(log {os.path.relpath(log)})" in detail and "no_such_model" in log.read_text()
    assert rows["cls/finetune/transfer/b/seed0"] == ("not started", "waits for pretrain/b/seed0 (failed)")
    assert "4 jobs: 2 done, 1 failed, 1 not started" in out
    assert f"rerun the failed ones: python -m suite run {os.path.relpath(path)} --failed" in out

    # Mended, --failed reruns the failed job and what waited for it, nothing else.
    tiny_suite(path, data, tmp_path / "out", b_flags="[]")
    done_before = (tmp_path / "out/pretrain/a/seed0/metrics.json").stat().st_mtime_ns
    code, out, _ = run(["run", path, "--failed"], capsys)
    assert code == 0 and "start pretrain/b/seed0" in out and "start cls/finetune/transfer/b/seed0" in out
    assert "start pretrain/a/seed0" not in out and "2 jobs: 2 done" in out
    assert (tmp_path / "out/pretrain/a/seed0/metrics.json").stat().st_mtime_ns == done_before
    assert json.loads((tmp_path / "out/.suite/jobs/pretrain/b/seed0/attempt.json").read_text())["n"] == 2

    # A second invocation does nothing, and says so.
    code, out, _ = run(["run", path], capsys)
    assert code == 0 and out.strip() == f"nothing to do: 4 jobs of {os.path.relpath(path)}: 4 done"

    # Pretraining a was redone: its transfer runs stand for the old weights, are reported and left alone.
    weights = tmp_path / "out/pretrain/a/seed0/weights.pth"
    saved = torch.load(weights, weights_only=True)
    torch.save({**saved, "meta": {**saved["meta"], "seed": 99}}, weights)
    code, out, err = run(["run", path], capsys)
    assert code == 1 and "4 jobs of" in out and "1 stale" in out
    assert f"stale cls/finetune/transfer/a/seed0: {weights} changed after this run (sha256 " in err
    assert f"; delete {tmp_path / 'out/cls/finetune/transfer/a/seed0'} to rerun it" in err
    rows = table(run(["status", path], capsys)[1])
    assert rows["cls/finetune/transfer/a/seed0"][0] == "stale" and rows["cls/finetune/transfer/b/seed0"][0] == "done"
    # A damaged record is unreadable (not stale, not done), named with its error, and never overwritten.
    metrics = tmp_path / "out/cls/finetune/transfer/b/seed0/metrics.json"
    metrics.write_text('{"kind": "cls_fine')
    rows = table(run(["status", path], capsys)[1])
    state, detail = rows["cls/finetune/transfer/b/seed0"]
    assert state == "unreadable" and detail.startswith(f"{metrics}: not valid JSON (") and detail.endswith(
        f"; restore the file or delete {metrics.parent} to rerun it"), detail
    assert run(["run", path], capsys)[0] == 1
    assert metrics.read_text() == '{"kind": "cls_fine'


def test_only_selects_by_key_and_brings_the_pretraining_along(data, tmp_path, capsys):
    path = tiny_suite(tmp_path / "suite.yaml", data, tmp_path / "out", b_flags="[]")
    code, out, _ = run(["run", path, "--dry_run", "--only", "cls/finetune/transfer/b"], capsys)
    assert code == 0 and [line.split(":")[0] for line in out.splitlines() if ": would run" in line] == [
        "pretrain/b/seed0", "cls/finetune/transfer/b/seed0"]
    code, _, err = run(["status", path, "--only", "det/"], capsys)
    assert code == 2 and err.startswith("error: --only det/: no job of") and len(err.splitlines()) == 1

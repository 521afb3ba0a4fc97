"""The suite runner's Slurm executor (submitit) on the real one-node cluster of
tools/slurm_cluster.sh: a small matrix with dependencies, a failure and stale runs;
a preempted job requeued by submitit and a killed one rerun, both resuming.

tools/run_tests.sh starts the cluster; alone, the `slurm` fixture of
tests/test_slurm.py does. Every job a test submits is cancelled when it ends."""
import json
import re
import subprocess
import textwrap
import time
from datetime import datetime

import pytest
import torch

from demo_data import write_ade20k
from test_slurm import slurm  # noqa: F401  (the cluster fixture)
from test_suite import TINY_PRETRAIN, data, run, table, tiny_suite  # noqa: F401  (data: a fixture)

SEG_DEMO = "seg_configs/demo/upernet_vit-demo_ade-demo.py"


@pytest.fixture
def cluster(slurm, tmp_path, monkeypatch):  # noqa: F811
    """SLURM_CONF for the runner (in this process); afterwards every job submitted under tmp_path is cancelled."""
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    yield slurm
    ids = {json.loads(p.read_text())["slurm_job_id"] for p in tmp_path.rglob(".suite/jobs/**/submitted.json")}
    if ids:
        subprocess.run(["scancel", *sorted(ids)], env=slurm, capture_output=True, timeout=60)


def slurm_out(env, *cmd):
    return subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=60).stdout


def release_requeued(env, job_id):
    """Start a requeued (PENDING) job now instead of after Slurm's hold (BeginTime: the
    credential lifetime, 121 s by default), but not within the second its old launch
    credential was revoked: slurmd refuses a credential made in or before that second
    ("Job credential revoked") and the job fails instead of running."""
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "starttime=now+1"], env=env, check=True, timeout=60)


def jobcomp(env):
    """Slurm's own record of every ended job (jobcomp/filetxt): job id (arrays: <array>_<task>) -> fields."""
    loc = re.search(r"^JobCompLoc\s*=\s*(\S+)", slurm_out(env, "scontrol", "show", "config"), re.M)
    if loc is None:
        pytest.skip("the cluster keeps no job completion file (JobCompLoc)")
    jobs = {}
    with open(loc.group(1)) as f:
        for line in f:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            key = (f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}" if fields.get("ArrayJobId") not in (None, "0")
                   else fields["JobId"])
            jobs[key] = fields
    return jobs


def submitted(root, key):
    return json.loads((root / ".suite/jobs" / key / "submitted.json").read_text())["slurm_job_id"]


def when(stamp):
    return datetime.fromisoformat(stamp)


def test_slurm_runs_the_matrix_after_its_pretraining_and_keeps_failures_to_their_dependents(
        cluster, data, tmp_path, capsys):  # noqa: F811
    write_ade20k(data / "ade", train_images=4, val_images=2, size=128, seed=6)
    seg = textwrap.dedent(f"""\
        seg:
          tasks: {{demo: {{tiny: {SEG_DEMO}}}}}
          seeds: [1]
          data: {data / 'ade'}
          cfg_options: [model.backbone.model_kwargs.depth=2, train_cfg.max_iters=2, train_cfg.val_interval=2,
                        default_hooks.checkpoint.interval=2, train_dataloader.batch_size=2]
        """)
    root = tmp_path / "out"
    path = tiny_suite(tmp_path / "suite.yaml", data, root)
    path.write_text(path.read_text() + seg)
    code, out, err = run(["run", path, "--executor", "slurm", "--wait", "--poll", "1"], capsys)
    assert code == 1, out + err
    assert re.search(r"submitted 2 pretrain jobs \((\d+)_0 \.\. \1_1", out), out

    rows = table(run(["status", path], capsys)[1])
    for key in ("pretrain/a/seed0", "cls/finetune/transfer/a/seed0", "seg/demo/a/seed1"):
        assert rows[key][0] == "done", (key, rows[key])
    state, detail = rows["pretrain/b/seed0"]
    assert state == "failed" and "error: unknown model 'no_such_model'" in detail
    assert ".suite/jobs/pretrain/b/seed0/log.txt" in detail
    for key in ("cls/finetune/transfer/b/seed0", "seg/demo/b/seed1"):  # Slurm removed them (kill-on-invalid-dep)
        assert rows[key] == ("not started", f"slurm job {submitted(root, key)} left the queue without starting "
                                            "(cancelled, or its dependency failed)"), rows[key]
    # The seed reached mmengine and its record.
    assert json.loads((root / "seg/demo/a/seed1/run.json").read_text())["randomness_seed"] == 1

    # Slurm's own record: no transfer job became eligible, let alone started, before its pretraining ended.
    ended = jobcomp(cluster)
    pre = ended[submitted(root, "pretrain/a/seed0")]
    for key in ("cls/finetune/transfer/a/seed0", "seg/demo/a/seed1"):
        job = ended[submitted(root, key)]
        assert job["JobState"] == "COMPLETED" and when(job["EligibleTime"]) >= when(pre["EndTime"]), (pre, job)
        assert when(job["StartTime"]) >= when(pre["EndTime"])
    assert ended[submitted(root, "seg/demo/b/seed1")]["JobState"] == "CANCELLED"

    # Mended and with a second fine-tuning seed, the same command runs what is left: a transfer from
    # finished pretraining waits for nothing. Then there is nothing to do.
    tiny_suite(path, data, root, b_flags="[]", cls_seeds="[0, 1]")
    path.write_text(path.read_text() + seg)
    code, out, err = run(["run", path, "--executor", "slurm", "--wait", "--poll", "1"], capsys)
    assert code == 0 and "8 jobs: 8 done" in out, out + err
    scripts = {key: (root / ".suite/slurm" / f"{submitted(root, key).split('_')[0]}_submission.sh").read_text()
               for key in ("cls/finetune/transfer/a/seed1", "cls/finetune/transfer/b/seed1")}
    assert "--dependency" not in scripts["cls/finetune/transfer/a/seed1"]
    assert f"--dependency=afterok:{submitted(root, 'pretrain/b/seed0')}" in scripts["cls/finetune/transfer/b/seed1"]
    code, out, _ = run(["run", path, "--executor", "slurm"], capsys)
    assert code == 0 and out.startswith("nothing to do: 8 jobs of") and out.strip().endswith(": 8 done"), out

    # A pretraining redone after its transfers: they are stale, reported, and nothing is submitted.
    weights = root / "pretrain/b/seed0/weights.pth"
    saved = torch.load(weights, weights_only=True)
    torch.save({**saved, "meta": {**saved["meta"], "seed": 7}}, weights)
    code, out, err = run(["run", path, "--executor", "slurm"], capsys)
    assert code == 1 and "5 done, 3 stale" in out and "submitted" not in out, out
    assert f"stale seg/demo/b/seed1: {weights} changed after this run" in err


def test_preempted_and_killed_slurm_jobs_resume_from_their_checkpoint(cluster, data, tmp_path, capsys):  # noqa: F811
    root = tmp_path / "out"
    path = tmp_path / "suite.yaml"
    flags = [*TINY_PRETRAIN, "--epochs", "60", "--ckpt_every_iters", "2"]  # later --epochs wins
    path.write_text(f"output_root: {root}\nresources: {{cpus_per_task: 1, time: 20}}\n"
                    f"pretrain:\n  architectures: {{tiny: [{{name: long, preset: demo_cpu}}]}}\n"
                    f"  data: {data / 'imagenet'}\n  flags: {json.dumps(flags)}\n")
    run_dir, book = root / "pretrain/long/seed0", root / ".suite/jobs/pretrain/long/seed0"
    assert run(["run", path, "--executor", "slurm"], capsys)[0] == 0
    job = submitted(root, "pretrain/long/seed0")

    def wait_until(condition, what, timeout=300):
        deadline = time.time() + timeout
        while not condition():
            assert time.time() < deadline, f"no {what} within {timeout} s: {(book / 'log.txt').read_text()[-2000:]}"
            time.sleep(0.2)

    def queue_state():
        return slurm_out(cluster, "squeue", "-h", "-j", job, "-o", "%T").strip()

    def attempts():
        return json.loads((book / "attempt.json").read_text())["n"] if (book / "attempt.json").is_file() else 0

    # Preemption (and a time limit) comes as USR2: submitit checkpoints the callable and requeues the job.
    wait_until(lambda: (run_dir / "checkpoint-last.pth").is_file(), "training checkpoint")
    subprocess.run(["scancel", "--signal=USR2", job], env=cluster, check=True, timeout=60)
    wait_until(lambda: queue_state() == "PENDING", "requeue", 60)
    assert table(run(["status", path], capsys)[1])["pretrain/long/seed0"][0] == "queued"
    release_requeued(cluster, job)
    wait_until(lambda: attempts() == 2 and "resuming at update" in (book / "log.txt").read_text(), "resumed attempt")

    # A kill (scancel, a crash, a node failure) ends the job; status says so, and the rerun resumes it.
    subprocess.run(["scancel", job], env=cluster, check=True, timeout=60)
    wait_until(lambda: queue_state() == "", "job leaving the queue", 60)
    state, detail = table(run(["status", path], capsys)[1])["pretrain/long/seed0"]
    assert state == "failed" and detail.startswith(("killed by SIGTERM", "ended without an exit status")), detail
    code, out, err = run(["run", path, "--executor", "slurm", "--wait", "--poll", "1"], capsys)
    assert code == 0 and "1 jobs: 1 done" in out, out + err
    assert attempts() == 3 and (book / "log.txt").read_text().count("resuming at update") == 2
    info = json.loads((run_dir / "run.json").read_text())
    assert info["resumed_from"]["path"] == str(run_dir / "checkpoint-last.pth"), info
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 60

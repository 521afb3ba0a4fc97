"""The Slurm launchers (tools/slurm_*.sh) and submitit on a real one-node Slurm
cluster (tools/slurm_cluster.sh), CPU tasks only, on tiny generated data.

tools/run_tests.sh starts the cluster and exports SLURM_CONF; run alone
(`pytest tests/test_slurm.py`) the `slurm` fixture starts it and stops it after.
Where no cluster can run (not root, no apt, no packages) every test here skips
with the reason."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo_data import write_imagenet
from helpers import REPO, TINY, free_port, read_jsonl
from test_cls_finetune import DEMO as CLS_DEMO
from test_cls_finetune import FAST, small_transfer  # noqa: F401  (small_transfer: a fixture)
from test_transfer_mm import DET_DEMO, VIT, coco, det_options  # noqa: F401  (coco: a fixture)

CLUSTER = REPO / "tools/slurm_cluster.sh"
PARTITION = os.environ.get("DT_SLURM_PARTITION", "debug")
RUN = f"dt-test-{os.getpid()}"  # job names of this session, unique on a shared cluster


def _cluster(command, timeout=1200):
    return subprocess.run(["bash", str(CLUSTER), command], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def slurm():
    """The environment for Slurm clients: the caller's SLURM_CONF, or the cluster of
    tools/slurm_cluster.sh (started here, and then stopped here, when it was not running)."""
    started = False
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        if why := os.environ.get("DT_SLURM_UNAVAILABLE"):  # tools/run_tests.sh tried already
            pytest.skip(f"SLURM_CONF is unset: {why}")
        if _cluster("status").returncode != 0:
            res = _cluster("start")
            if res.returncode == 3:
                pytest.skip(f"SLURM_CONF is unset and {res.stderr.strip()}")
            assert res.returncode == 0, res.stdout + res.stderr
            started = True
        conf = _cluster("env").stdout.strip().removeprefix("export SLURM_CONF=")
    env = {**os.environ, "SLURM_CONF": conf, "DT_VENV": sys.prefix, "GPUS_PER_NODE": "0", "CPUS_PER_TASK": "1"}
    try:
        sinfo = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30)
        answer = sinfo.stdout.strip() if sinfo.returncode == 0 else sinfo.stderr.strip()
        ok = sinfo.returncode == 0 and bool(answer)
    except (OSError, subprocess.TimeoutExpired) as exc:
        answer, ok = str(exc), False
    if not ok:
        if started:
            _cluster("stop")
        pytest.skip(f"sinfo does not answer with SLURM_CONF={conf}: {answer or 'no nodes'}")
    yield env
    if started:
        assert _cluster("stop").returncode == 0


def launch(tool, job, *args, env, timeout=600, **kw):
    """bash tools/<tool> PARTITION JOB ARGS in the foreground (srun waits for the job)."""
    cmd = ["bash", str(REPO / "tools" / tool), PARTITION, job, *map(str, args)]
    return subprocess.run(cmd, env={**env, **kw}, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def job_fields(env, job_name):
    """`scontrol show job` of the (last) job named job_name, as a dict."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], env=env, capture_output=True, text=True,
                         timeout=30).stdout
    lines = [line for line in out.splitlines() if f" JobName={job_name} " in line]
    assert lines, f"no job named {job_name} in scontrol show job"
    return dict(f.split("=", 1) for f in lines[-1].split() if "=" in f)


def final_state(env, job_name, timeout=60):
    """The job's state once Slurm is done with it (COMPLETING lasts a moment after srun returns)."""
    deadline = time.time() + timeout
    while (state := job_fields(env, job_name)["JobState"]) in ("PENDING", "RUNNING", "COMPLETING"):
        assert time.time() < deadline, f"job {job_name} still {state} after {timeout} s"
        time.sleep(0.2)
    return state


def test_cluster_script_is_idempotent_and_rejects_bad_use(slurm):
    mine = _cluster("env").stdout.strip()
    if mine != f"export SLURM_CONF={slurm['SLURM_CONF']}":
        pytest.skip("SLURM_CONF names a cluster other than tools/slurm_cluster.sh's")
    again = _cluster("start", timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout and again.stdout.strip().splitlines()[-1] == mine
    assert _cluster("status").returncode == 0
    bad = _cluster("restart")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "usage" in bad.stderr


def test_srun_gives_each_task_its_rank_and_a_resolvable_node(slurm):
    res = subprocess.run(["srun", "-p", PARTITION, "-J", f"{RUN}-ranks", "-n", "2", "bash", "-c",
                          'echo "$SLURM_PROCID/$SLURM_NTASKS $(getent hosts $(scontrol show hostnames '
                          '"$SLURM_JOB_NODELIST" | head -n1) | cut -d" " -f1)"'],
                         env=slurm, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    ranks = sorted(line.split()[0] for line in res.stdout.splitlines())
    assert ranks == ["0/2", "1/2"]
    assert all(len(line.split()) == 2 for line in res.stdout.splitlines()), res.stdout  # MASTER_ADDR resolves


@pytest.fixture(scope="module")
def slurm_pretraining(slurm, tmp_path_factory):
    """tests/test_transfer_mm.py's `pretrained` run (two-block ViT, one epoch), by tools/slurm_pretrain.sh."""
    root = tmp_path_factory.mktemp("slurm_pretrain")
    write_imagenet(root / "imagenet", train_per_class=4, val_per_class=1, size=64, seed=3)
    res = launch("slurm_pretrain.sh", f"{RUN}-pretrain", *TINY, *VIT,
                 "--data_path", root / "imagenet", "--epochs", "1", "--output_dir", root / "run",
                 env=slurm, PORT=str(free_port()))
    return root / "run", res


def test_slurm_pretrain_runs_one_cpu_task(slurm, slurm_pretraining):
    out, res = slurm_pretraining
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"]["n"] == 12  # one validation image per class
    assert (out / "weights.pth").is_file()
    assert len(read_jsonl(out / "log_iter.jsonl")) == 48 // 16
    assert json.loads((out / "run.json").read_text())["world_size"] == 1
    assert final_state(slurm, f"{RUN}-pretrain") == "COMPLETED"
    job = job_fields(slurm, f"{RUN}-pretrain")
    assert (job["NumTasks"], job["ExitCode"]) == ("1", "0:0")


def test_slurm_train_fine_tunes_mask_rcnn_on_one_cpu_task(slurm, slurm_pretraining, coco, tmp_path):  # noqa: F811
    weights = slurm_pretraining[0] / "weights.pth"
    if not weights.is_file():
        pytest.skip("no pretraining checkpoint: test_slurm_pretrain_runs_one_cpu_task failed")
    work = tmp_path / "det"
    res = launch("slurm_train.sh", f"{RUN}-det", DET_DEMO, work, "--cfg-options", *det_options(coco, weights),
                 env=slurm)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics["finished"] is True and 0.0 <= metrics["metrics"]["coco/bbox_mAP"] <= 1.0
    assert (work / "epoch_1.pth").is_file()
    assert final_state(slurm, f"{RUN}-det") == "COMPLETED"


def test_slurm_cls_finetune_runs_one_cpu_task(slurm, slurm_pretraining, small_transfer, tmp_path):  # noqa: F811
    weights = slurm_pretraining[0] / "weights.pth"
    if not weights.is_file():
        pytest.skip("no pretraining checkpoint: test_slurm_pretrain_runs_one_cpu_task failed")
    out = tmp_path / "cls"
    res = launch("slurm_cls_finetune.sh", f"{RUN}-cls", "--config", CLS_DEMO, *FAST, "--data_path", small_transfer,
                 "--finetune", weights, "--epochs", "1", "--output_dir", out, env=slurm, PORT=str(free_port()))
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "finetune" and metrics["final"]["n"] == 6 * 2  # every test image once
    assert json.loads((out / "run.json").read_text())["world_size"] == 1
    assert final_state(slurm, f"{RUN}-cls") == "COMPLETED"


@pytest.mark.parametrize("tool, variables, fragment", [
    ("slurm_train.sh", {"GPUS_PER_NODE": "0", "GPUS": "2"}, "one CPU task"),
    ("slurm_pretrain.sh", {"GPUS_PER_NODE": "two"}, "GPUS_PER_NODE must be a positive whole number"),
    ("slurm_cls_finetune.sh", {"GPUS_PER_NODE": "0", "CPUS_PER_TASK": "0"}, "CPUS_PER_TASK must be"),
])
def test_launcher_refuses_bad_resources_in_one_line(tool, variables, fragment, tmp_path):
    # Checked before srun: no cluster needed, and nothing may be submitted.
    args = [DET_DEMO, tmp_path / "work"] if tool == "slurm_train.sh" else ["--output_dir", tmp_path / "out"]
    env = {k: v for k, v in os.environ.items() if k not in ("GPUS", "GPUS_PER_NODE", "CPUS_PER_TASK")}
    res = launch(tool, f"{RUN}-bad", *args, env=env, **variables, timeout=60)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert fragment in res.stderr
    assert not any(tmp_path.iterdir())


def job_pids(env, job_id):
    """The processes Slurm tracks for a job on this node (`scontrol listpids`)."""
    out = subprocess.run(["scontrol", "listpids", job_id], env=env, capture_output=True, text=True, timeout=30).stdout
    return [int(line.split()[0]) for line in out.splitlines()[1:] if line.split() and line.split()[0].isdigit()]


def alive(pid):
    try:  # a zombie is dead, just not yet reaped
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_scancel_stops_a_running_job_and_its_processes(slurm, small_imagenet, tmp_path):
    out = tmp_path / "cancelled-run"
    job = f"{RUN}-cancel"
    # Long enough never to finish here; a data loader worker gives the task a child process to kill too.
    srun = subprocess.Popen(["bash", str(REPO / "tools/slurm_pretrain.sh"), PARTITION, job, *map(str, TINY),
                             "--data_path", str(small_imagenet), "--epochs", "1000", "--num_workers", "1",
                             "--output_dir", str(out)],
                            env={**slurm, "PORT": str(free_port())}, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        pids = []
        while not ((out / "log_iter.jsonl").is_file() and len(pids) >= 2):
            if srun.poll() is not None:
                pytest.fail(f"the job ended before it could be cancelled: {srun.stderr.read()[-2000:]}")
            assert time.time() < deadline, "the job never started training with a data loader worker"
            time.sleep(0.2)
            job_id = job_fields(slurm, job)["JobId"]
            pids = [p for p in job_pids(slurm, job_id) if alive(p)]
        assert job_fields(slurm, job)["JobState"] == "RUNNING"
        subprocess.run(["scancel", job_id], env=slurm, check=True, timeout=30)
        srun.wait(timeout=60)
        assert srun.returncode != 0
        deadline = time.time() + 30  # tools/slurm_cluster.sh sets KillWait=5 (SIGKILL 5 s after SIGTERM)
        while left := [p for p in pids if alive(p)]:
            assert time.time() < deadline, f"processes {left} of job {job_id} still run after scancel"
            time.sleep(0.2)
        assert final_state(slurm, job) == "CANCELLED"
        assert not (out / "metrics.json").exists()  # stopped mid-training, not finished
    finally:
        if srun.poll() is None:
            srun.kill()
            srun.wait()


def test_submitit_runs_a_function_and_reports_its_failure(slurm, tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(slurm_partition=PARTITION, cpus_per_task=1, timeout_min=5, name=f"{RUN}-submitit")
    ok = executor.submit(os.getenv, "SLURM_JOB_ID")  # stdlib functions unpickle in any interpreter
    bad = executor.submit(int, "not a number")
    assert ok.result() == ok.job_id
    with pytest.raises(submitit.core.utils.FailedJobError, match="not a number"):
        bad.result()

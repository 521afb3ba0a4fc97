"""The suite runner under the faults a cluster produces, on the local executor and the
real one-node Slurm cluster of tools/slurm_cluster.sh. Each test asserts the outcome
and the exact line a user reads:

* kill -9 of the runner and of its job at a random update, then of a job while it
  writes its checkpoint: the reruns resume (from the checkpoint before the one being
  written) to the same losses and bit-identical weights as an uninterrupted run of the
  same seed; a second runner on the busy output_root prints only its refusal;
* a failed transfer job whose pretraining is done, rerun with ``--failed`` once its
  cause is fixed, locally and on Slurm (with ``scontrol requeue`` and ``scancel`` of a
  running job: it resumes, and only the failed jobs are resubmitted);
* a replaced pretraining checkpoint: stale in ``suite status``/``run`` and compare;
* a truncated or invalid ``metrics.json``/``run.json``: unreadable in both, named with
  its parse error, never done or stale, never overwritten.

tests/test_suite_slurm.py has the preemption (USR2) and the matrix on Slurm."""
import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from compare import main as compare_main
from helpers import REPO, read_jsonl
from test_slurm import slurm  # noqa: F401  (the cluster fixture)
from test_suite import TINY_CLS, TINY_PRETRAIN, data, run, table  # noqa: F401  (data: a fixture)
from test_suite_slurm import cluster, release_requeued, slurm_out, submitted  # noqa: F401  (cluster: a fixture)


def write_suite(path, data_root, root, cls_data=None, more="", flags=()):
    """Pretraining ``a`` and fine-tuning from it on ``transfer`` (or on the datasets of
    ``cls_data``); ``more``: pretraining runs of architecture ``tiny2``, which nothing is
    transferred from; ``flags``: added to every pretraining run."""
    cls_data = cls_data or {"transfer": data_root / "transfer"}
    datasets = {name: "cls_configs/_base_/demo_data.yaml" for name in cls_data}
    path.write_text(textwrap.dedent(f"""\
        output_root: {root}
        resources: {{cpus_per_task: 1, time: 15}}
        pretrain:
          architectures:
            tiny: [{{name: a, preset: demo_cpu}}]
        """) + (f"    tiny2: {more}\n" if more else "") + textwrap.dedent(f"""\
          data: {data_root / 'imagenet'}
          flags: {json.dumps([*TINY_PRETRAIN, *flags])}
        cls:
          recipes: {{finetune: cls_configs/demo_cpu.yaml}}
          datasets: {json.dumps(datasets)}
          architectures: [tiny]
          data: {json.dumps({k: str(v) for k, v in cls_data.items()})}
          flags: {json.dumps(TINY_CLS)}
        """))
    return path


def rel(path):
    return os.path.relpath(path)


def compare_runs(suite_path, out, capsys, *flags):
    """compare's verdict on every run of the suite: (exit code, stderr, run dir -> (status, note))."""
    capsys.readouterr()
    code = compare_main([str(suite_path), "--out", str(out), "--no_plots", *flags])
    err = capsys.readouterr().err
    rows = {}
    if code == 0:
        with open(out / "runs.csv") as f:
            rows = {r["run_dir"]: (r["status"], r["note"]) for r in csv.DictReader(f)}
    return code, err.strip(), rows


# ---- a finished matrix, damaged and mended in place -------------------------------------------

@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):  # noqa: F811
    """Pretraining a and fine-tuning from it, both done (the local executor)."""
    base = tmp_path_factory.mktemp("finished")
    path = write_suite(base / "suite.yaml", data, base / "out")
    from suite.__main__ import main
    assert main(["run", str(path)]) == 0
    return path, base / "out"


PRE, CLS = "pretrain/a/seed0", "cls/finetune/transfer/a/seed0"


@pytest.mark.parametrize("key", [PRE, CLS])
@pytest.mark.parametrize("name", ["metrics.json", "run.json"])
@pytest.mark.parametrize("damage", ["truncated", "not an object"])
def test_a_damaged_record_is_unreadable_in_status_run_and_compare(finished, key, name, damage, tmp_path, capsys):
    path, root = finished
    record = root / key / name
    intact = record.read_bytes()
    other = CLS if key == PRE else PRE
    try:
        record.write_bytes(intact[: len(intact) // 2] if damage == "truncated" else b'["not", "a", "record"]')
        # compare stops with one line naming the file and the parse error ...
        code, err, _ = compare_runs(path, tmp_path / "cmp", capsys)
        why = (f"{record}: not valid JSON (" if damage == "truncated"
               else f"{record}: expected a JSON object, found a list")
        assert code == 2 and err.startswith(f"error: {why}") and len(err.splitlines()) == 1, err
        error = err[len("error: "):]
        # ... and lists the run as unreadable with that error when told to skip it
        code, _, runs = compare_runs(path, tmp_path / "cmp", capsys, "--skip_unreadable")
        assert code == 0 and runs[str(root / key)] == ("unreadable", error), runs
        assert runs[str(root / other)][0] == "finished"
        # suite status: the same verdict and error, and how to recover
        detail = f"{error}; restore the file or delete {root / key} to rerun it"
        rows = table(run(["status", path], capsys)[1])
        assert rows[key] == ("unreadable", detail) and rows[other] == ("done", ""), rows
        # suite run: nothing started, the damage reported, exit 1, the file left as it is
        code, out, err = run(["run", path], capsys)
        assert code == 1, out + err
        assert out.splitlines()[0] == f"nothing to do: 2 jobs of {rel(path)}: 1 done, 1 unreadable", out
        assert err.strip() == f"unreadable {key}: {detail}"
        assert record.read_bytes() != intact
    finally:
        record.write_bytes(intact)
    assert run(["run", path], capsys)[0] == 0


def test_a_replaced_checkpoint_makes_its_transfer_stale_in_status_run_and_compare(finished, tmp_path, capsys):
    path, root = finished
    weights = root / PRE / "weights.pth"
    intact = weights.read_bytes()
    try:
        saved = torch.load(weights, weights_only=True)
        torch.save({**saved, "meta": {**saved["meta"], "seed": 99}}, weights)  # pretraining redone
        code, _, runs = compare_runs(path, tmp_path / "cmp", capsys)
        status, note = runs[str(root / CLS)]
        assert code == 0 and status == "stale" and note.startswith(f"{weights} changed after this run (sha256 "), note
        assert runs[str(root / PRE)] == ("finished", "")
        detail = f"{note}; delete {root / CLS} to rerun it"
        rows = table(run(["status", path], capsys)[1])
        assert rows[CLS] == ("stale", detail) and rows[PRE] == ("done", ""), rows
        code, out, err = run(["run", path], capsys)
        assert code == 1 and out.splitlines()[0] == f"nothing to do: 2 jobs of {rel(path)}: 1 done, 1 stale", out
        assert err.strip() == f"stale {CLS}: {detail}"
    finally:
        weights.write_bytes(intact)
    assert compare_runs(path, tmp_path / "cmp", capsys)[2][str(root / CLS)] == ("finished", "")


def test_failed_transfer_after_finished_pretraining_reruns_with_failed(finished, data, tmp_path, capsys):  # noqa: F811
    """The fine-tuning data is missing at first; once it is there, --failed runs the job."""
    _, root = finished
    later = tmp_path / "later"
    path = write_suite(tmp_path / "suite.yaml", data, root, {"transfer": data / "transfer", "later": later})
    key = "cls/finetune/later/a/seed0"
    code, out, err = run(["run", path], capsys)
    assert code == 1 and "1 of 3 jobs to run (2 done, 1 not started)" in out, out + err
    rows = table(run(["status", path], capsys)[1])
    assert rows[key][0] == "failed" and rows[key][1].startswith(
        f"exit 2: error: --data_path: no directory {later}/train"), rows[key]
    assert f"rerun the failed ones: python -m suite run {rel(path)} --failed" in run(["status", path], capsys)[1]

    # Its pretraining unreadable: the job says so in one line and nothing starts.
    metrics = root / PRE / "metrics.json"
    intact = metrics.read_bytes()
    metrics.write_text("{")
    try:
        code, out, err = run(["run", path, "--failed"], capsys)
        assert code == 1 and "start " not in out, out
        pre = table(run(["status", path], capsys)[1])[PRE]
        assert f"[suite] not started {key}: its pretraining {PRE} is unreadable ({pre[1]})" in out.splitlines(), out
    finally:
        metrics.write_bytes(intact)

    shutil.copytree(data / "transfer", later)  # the cause fixed
    code, out, _ = run(["run", path, "--failed", "--dry_run"], capsys)
    assert code == 0 and out.splitlines()[0] == f"{key}: would run [CPU, 1 cpu/task, 00:15:00]", out
    assert out.splitlines()[-1] == "plan: 1 of 1 jobs would run (1 failed)"
    code, out, err = run(["run", path, "--failed"], capsys)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith("1 of 1 jobs to run (1 failed); bookkeeping and logs under"), out
    assert lines[1].startswith(f"[suite 1/1] start {key} (log ") and lines[2].startswith(f"[suite] done {key} in ")
    assert lines[3:] == ["1 jobs: 1 done"]
    code, out, _ = run(["run", path], capsys)
    assert code == 0 and out.strip() == f"nothing to do: 3 jobs of {rel(path)}: 3 done"


# ---- kill -9 ---------------------------------------------------------------------------------------

def runner(path):
    """``python -m suite run path`` in a process of its own (so that it can be killed)."""
    return subprocess.Popen([sys.executable, "-m", "suite", "run", str(path)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def attempt(root, key):
    path = root / ".suite/jobs" / key / "attempt.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def wait_until(condition, what, proc=None, timeout=240, context=None):
    """``context``: a callable whose answer the failure message carries (what the waiting saw)."""
    deadline = time.time() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the runner ended before {what}: {proc.stdout.read()[-3000:]}")
        assert time.time() < deadline, f"no {what} within {timeout} s" + (f": {context()}" if context else "")
        time.sleep(0.02)


def gone(pid):
    """The process ended (a zombie whose parent was killed counts: nothing reaps it here)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def test_killed_runner_and_jobs_resume_to_the_uninterrupted_result(data, tmp_path, capsys):  # noqa: F811
    """``victim`` is the same pretraining as ``a`` (same preset, flags and seed), killed twice."""
    root = tmp_path / "out"
    path = write_suite(tmp_path / "suite.yaml", data, root, more="[{name: victim, preset: demo_cpu}]",
                       flags=["--epochs", "6", "--ckpt_every_iters", "2"])
    path.write_text(path.read_text().split("cls:")[0])  # pretraining only
    ref, victim = root / "pretrain/a/seed0", root / "pretrain/victim/seed0"
    log = root / ".suite/jobs/pretrain/victim/seed0/log.txt"
    first = runner(path)
    try:
        # A second runner on the same output_root: its refusal, and nothing else.
        wait_until(lambda: attempt(root, "pretrain/a/seed0").get("pid") not in (None, first.pid), "a job", first)
        code, out, err = run(["run", path], capsys)
        assert (code, out) == (2, ""), out
        assert err.strip() == (f"error: another `suite run` (pid {first.pid}) is running on {root}; wait for it or "
                               "stop it first")
        assert table(run(["status", path], capsys)[1])["pretrain/a/seed0"] == (
            "running", f"pid {attempt(root, 'pretrain/a/seed0')['pid']} on {socket.gethostname()}")

        # kill -9 of the runner and of its job at a random update
        update = random.randint(3, 10)  # of 18
        wait_until(lambda: victim.joinpath("log_iter.jsonl").is_file()
                   and len(read_jsonl(victim / "log_iter.jsonl")) >= update, f"update {update}", first)
        job = attempt(root, "pretrain/victim/seed0")["pid"]
        first.kill()
        os.kill(job, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    wait_until(lambda: gone(job), "end of the killed job")
    resumed_at = torch.load(victim / "checkpoint-last.pth", weights_only=True)["next_step"]
    state, detail = table(run(["status", path], capsys)[1])["pretrain/victim/seed0"]
    assert state == "failed" and detail.startswith(
        "ended without an exit status (the runner or the job was killed): "), (update, detail)

    # kill -9 of the rerun's job while it writes its checkpoint: frozen in the act, then killed. A first kill
    # that landed in a checkpoint write left that write's temporary file: not the rerun's, so ignored.
    stale = set(os.listdir(victim))
    second = runner(path)
    try:
        wait_until(lambda: attempt(root, "pretrain/victim/seed0").get("n") == 2
                   and attempt(root, "pretrain/victim/seed0").get("pid") != second.pid
                   and log.read_text().count(", resuming at update ") == 1, "the rerun resuming", second)
        job = attempt(root, "pretrain/victim/seed0")["pid"]
        previous = None
        deadline = time.time() + 240
        while previous is None and second.poll() is None and time.time() < deadline:
            writing = [n for n in os.listdir(victim)
                       if "checkpoint-last.pth" in n and n != "checkpoint-last.pth" and n not in stale]
            if not writing:
                time.sleep(0.001)
                continue
            os.kill(job, signal.SIGSTOP)
            if (victim / writing[0]).exists():  # still writing: the checkpoint it replaces is whole
                previous = torch.load(victim / "checkpoint-last.pth", weights_only=True)["next_step"]
                os.kill(job, signal.SIGKILL)
            else:
                os.kill(job, signal.SIGCONT)
        assert previous is not None, "no checkpoint write caught"
        out = second.communicate(timeout=120)[0]
    finally:
        second.kill()
        second.wait()
    assert second.returncode == 1, out
    assert "[suite] FAILED pretrain/victim/seed0: killed by SIGKILL: " in out, out

    code, out, err = run(["run", path], capsys)
    assert code == 0 and out.splitlines()[-1] == "2 jobs: 2 done", out + err
    assert log.read_text().count(", resuming at update ") == 2
    assert f", resuming at update {resumed_at}\n" in log.read_text() and previous >= resumed_at
    assert f", resuming at update {previous}\n" in log.read_text(), (previous, log.read_text()[-3000:])
    got, want = read_jsonl(victim / "log_iter.jsonl"), read_jsonl(ref / "log_iter.jsonl")
    assert [r["step"] for r in got] == list(range(18)) and [r["loss"] for r in got] == [r["loss"] for r in want]
    a = torch.load(victim / "weights.pth", weights_only=True)["model"]
    b = torch.load(ref / "weights.pth", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- Slurm: scontrol requeue, scancel, --failed --------------------------------------------------

def test_slurm_requeue_cancel_and_failed_rerun(cluster, data, tmp_path, capsys):  # noqa: F811
    root, later = tmp_path / "out", tmp_path / "later"
    path = write_suite(tmp_path / "suite.yaml", data, root, {"later": later},
                       more="[{name: long, preset: demo_cpu, flags: [--epochs, 40, --ckpt_every_iters, 2]}]")
    key, long_key = "cls/finetune/later/a/seed0", "pretrain/long/seed0"
    long_dir, book = root / long_key, root / ".suite/jobs" / long_key
    code, out, err = run(["run", path, "--executor", "slurm"], capsys)
    assert code == 0 and "submitted 2 pretrain jobs" in out and "submitted 1 cls job" in out, out + err
    job = submitted(root, long_key)

    def queue_state(job_id):
        return slurm_out(cluster, "squeue", "-h", "-j", job_id, "-o", "%T").strip()

    def resumed(n):
        return (attempt(root, long_key).get("n") == n
                and (book / "log.txt").read_text().count(", resuming at update ") == n - 1)

    def seen():
        """Slurm's word on the job (kept a while after it ends), its last attempt and its log's end."""
        fields = slurm_out(cluster, "scontrol", "show", "job", job).split()
        said = " ".join(f for f in fields if f.startswith(("JobState=", "Reason=", "Restarts=", "EligibleTime=")))
        return (f"{said or 'slurm knows no job ' + job}; attempt {attempt(root, long_key).get('n')}; "
                f"log: {(book / 'log.txt').read_text()[-1500:]}")

    # scontrol requeue of the running job: it comes back and resumes from its checkpoint.
    wait_until(lambda: (long_dir / "checkpoint-last.pth").is_file(), "training checkpoint", timeout=300, context=seen)
    subprocess.run(["scontrol", "requeue", job], env=cluster, check=True, timeout=60)
    wait_until(lambda: queue_state(job) == "PENDING", "requeue", timeout=120, context=seen)
    release_requeued(cluster, job)
    wait_until(lambda: resumed(2), "resumed attempt", timeout=300, context=seen)
    # scancel of the running job: reported as such.
    subprocess.run(["scancel", job], env=cluster, check=True, timeout=60)
    wait_until(lambda: queue_state(job) == "", "cancelled job leaving the queue", timeout=120)
    ids = [submitted(root, k) for k in ("pretrain/a/seed0", key)]
    wait_until(lambda: not slurm_out(cluster, "squeue", "-h", "-j", ",".join(ids)).strip(), "the rest", timeout=300)
    rows = table(run(["status", path], capsys)[1])
    assert rows["pretrain/a/seed0"] == ("done", "")
    assert rows[long_key][0] == "failed" and rows[long_key][1].startswith(
        ("killed by SIGTERM", "ended without an exit status (killed, cancelled, timed out or node failure)")), rows
    assert rows[key][0] == "failed" and rows[key][1].startswith(
        f"exit 2: error: --data_path: no directory {later}/train"), rows[key]

    # The cause fixed, --failed resubmits the two failed jobs only; the fine-tuning needs no dependency.
    shutil.copytree(data / "transfer", later)
    before = submitted(root, "pretrain/a/seed0")
    code, out, err = run(["run", path, "--executor", "slurm", "--failed", "--wait", "--poll", "1"], capsys)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith("2 of 2 jobs to run (2 failed); bookkeeping and logs under"), out
    assert lines[1].startswith("[suite] submitted 1 pretrain job (") and lines[1].endswith(
        "; CPU, 1 cpu/task, 00:15:00)"), out
    assert lines[2].startswith("[suite] submitted 1 cls job (") and "after" not in lines[2], out
    assert lines[-1] == "2 jobs: 2 done", out
    assert submitted(root, "pretrain/a/seed0") == before
    script = root / ".suite/slurm" / f"{submitted(root, key).split('_')[0]}_submission.sh"
    assert "--dependency" not in script.read_text()
    assert resumed(3) and json.loads((long_dir / "metrics.json").read_text())["epochs"] == 40
    code, out, _ = run(["run", path, "--executor", "slurm"], capsys)
    assert code == 0 and out.strip() == f"nothing to do: 3 jobs of {rel(path)}: 3 done", out


# ---- one-line errors worded for what was found -----------------------------------------------------

def test_a_directory_is_not_a_suite_file(tmp_path, capsys):
    (tmp_path / "paper.yaml").write_text("output_root: o\n")
    code, out, err = run(["run", tmp_path], capsys)
    assert (code, out) == (2, "") and err.strip() == (f"error: suite file {tmp_path} is a directory, not a suite "
                                                      "file (it holds paper.yaml)")
    code, _, err = run(["status", tmp_path / "nowhere.yaml"], capsys)
    assert code == 2 and err.strip() == f"error: suite file {tmp_path / 'nowhere.yaml'} does not exist"

"""What the runner knows about each job, and the one status rule for both executors.

Bookkeeping lives under ``<output_root>/.suite/jobs/<key>/``:

* ``submitted.json``: written by the runner when it hands the job to Slurm
  (``slurm_job_id``, ``submitted``) — Slurm's own accounting (sacct) is not needed;
* ``attempt.json``: written by the job itself when an attempt starts and ends
  (``n``, ``executor``, ``host``, ``pid``, ``slurm_job_id``, ``started``, ``ended``, ``exit_code``);
* ``log.txt``: the entry point's stdout and stderr, every attempt appended after a header line.

Done, stale and unreadable come from the run records, through the one verdict
that compare uses too (``records.verdict``), never from the bookkeeping; the
bookkeeping tells running, queued, failed and not started apart.
"""
from __future__ import annotations

import fcntl
import os
import re
import shlex
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

import records
from common.files import read_json_or_none, write_json

from .spec import Job, Suite, SuiteError

DONE, STALE, UNREADABLE, RUNNING, QUEUED, FAILED, NOT_STARTED = (
    "done", "stale", "unreadable", "running", "queued", "failed", "not started")
STATES = (DONE, STALE, UNREADABLE, RUNNING, QUEUED, FAILED, NOT_STARTED)

# Lines of a log that say what went wrong: the entry points' one-line errors, a Python
# exception's last line, the kernel's or the shell's word on a killed process.
_ERROR_LINE = re.compile(r"^(error: |[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b|Killed\b|.*\bTraceback\b)")


def job_dir(suite: Suite, job: Job) -> Path:
    return suite.state_dir / "jobs" / job.key


def log_path(suite: Suite, job: Job, rank: int = 0) -> Path:
    return job_dir(suite, job) / ("log.txt" if rank == 0 else f"log.rank{rank}.txt")


def read_submission(suite: Suite, job: Job) -> Optional[dict]:
    return read_json_or_none(job_dir(suite, job) / "submitted.json")


def read_attempt(suite: Suite, job: Job) -> Optional[dict]:
    return read_json_or_none(job_dir(suite, job) / "attempt.json")


def write_submission(suite: Suite, job: Job, slurm_job_id: str, name: str) -> None:
    folder = job_dir(suite, job)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "submitted.json", {"executor": "slurm", "slurm_job_id": slurm_job_id, "name": name,
                                           "submitted": time.time()})


def start_attempt(suite: Suite, job: Job, executor: str, pid: int, command, slurm_job_id: Optional[str] = None,
                  n: Optional[int] = None) -> dict:
    """Record an attempt as started (``n``: rewrite attempt ``n``, e.g. with the child's pid)."""
    folder = job_dir(suite, job)
    folder.mkdir(parents=True, exist_ok=True)
    if n is None:
        n = int((read_attempt(suite, job) or {}).get("n", 0)) + 1
    attempt = {"n": n, "executor": executor, "host": socket.gethostname(), "pid": pid,
               "slurm_job_id": slurm_job_id, "started": time.time(), "ended": None, "exit_code": None,
               "command": list(map(str, command))}
    write_json(folder / "attempt.json", attempt)
    return attempt


def end_attempt(suite: Suite, job: Job, attempt: dict, exit_code: int, note: str = "") -> None:
    write_json(job_dir(suite, job) / "attempt.json",
               {**attempt, "ended": time.time(), "exit_code": exit_code, "note": note})


def open_log(suite: Suite, job: Job, attempt: dict, rank: int = 0):
    """The job's log, opened for appending, with a header line for this attempt."""
    path = log_path(suite, job, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a")
    where = f"slurm job {attempt['slurm_job_id']}" if attempt.get("slurm_job_id") else f"pid {attempt['pid']}"
    f.write(f"==== suite: attempt {attempt['n']} of {job.key} on {attempt['host']} ({where}) at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n$ {shlex.join(attempt['command'])}\n")
    f.flush()
    return f


def last_error_line(path: Path, limit: int = 1 << 16) -> str:
    """The last line of the last attempt's log that says what went wrong (else its last line)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.split("==== suite: attempt")[-1].splitlines()[2:] if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.match(line) and "Traceback" not in line]
    return (errors or lines or [""])[-1][:300]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def pid_alive(attempt: dict) -> bool:
    """The local attempt's process is still running (on this host). Not a zombie (a job
    killed after its runner was: nothing reaps it where no init does, as in many
    containers) and not a later process that was given the same pid."""
    if attempt.get("host") != socket.gethostname() or not attempt.get("pid"):
        return False
    try:
        pid = int(attempt["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    try:  # Linux: the process's state and start time (clock ticks after boot)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return True  # no /proc: what kill(0) said
    if fields[0] in ("Z", "X"):
        return False
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= float(attempt.get("started") or started) + 5  # the attempt records its pid after the start


@dataclass
class Status:
    state: str
    detail: str = ""
    log: Optional[Path] = None


Queue = Dict[str, Tuple[str, str, str]]  # slurm job id -> (state, reason, job name), from squeue


def status_of(suite: Suite, job: Job, hashes: records.Hashes, queue: Optional[Queue] = None) -> Status:
    """done / stale / unreadable / running / queued / failed / not started: the run's
    verdict (``records.verdict``, the same as compare's), then the bookkeeping and (for
    Slurm jobs) squeue's answer."""
    rec = records.verdict(job.run_dir, hashes, job.checkpoint)
    if rec.status in (records.FINISHED, records.NO_METRICS):
        return Status(DONE, rec.note if rec.status == records.FINISHED else f"no metrics: {rec.note}")
    if rec.status == records.STALE:
        return Status(STALE, f"{rec.note}; delete {job.run_dir} to rerun it")
    if rec.status == records.UNREADABLE:
        return Status(UNREADABLE, f"{rec.note}; restore the file or delete {job.run_dir} to rerun it")
    log = log_path(suite, job)
    submitted, attempt = read_submission(suite, job), read_attempt(suite, job)
    slurm_id = (submitted or {}).get("slurm_job_id")
    # The name guards against a job id that a new cluster (or a wrapped counter) gave to another job.
    if slurm_id and queue is not None and queue.get(slurm_id, ("", "", ""))[2] == submitted.get("name"):
        slurm_state, reason, _ = queue[slurm_id]
        if slurm_state in ("RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SUSPENDED"):
            return Status(RUNNING, f"slurm job {slurm_id} {slurm_state.lower()}", log)
        return Status(QUEUED, f"slurm job {slurm_id} {slurm_state.lower()}" + (f" ({reason})" if reason else ""), log)
    # An attempt of another job than the last submission, and older, belongs to an earlier try.
    current = attempt is not None and (not submitted or attempt.get("slurm_job_id") == slurm_id
                                       or attempt.get("started", 0) >= submitted.get("submitted", 0))
    if current and attempt.get("ended") is None:
        if attempt.get("executor") == "local" and pid_alive(attempt):
            return Status(RUNNING, f"pid {attempt['pid']} on {attempt['host']}", log)
        if attempt.get("executor") == "slurm" and queue is None:
            return Status(RUNNING, f"slurm job {attempt.get('slurm_job_id')} (queue not asked)", log)
        how = ("the runner or the job was killed" if attempt.get("executor") == "local"
               else "killed, cancelled, timed out or node failure")
        return Status(FAILED, f"ended without an exit status ({how}): {last_error_line(log)}", log)
    if current:
        code = attempt.get("exit_code")
        if code == 0:
            return Status(FAILED, "exited 0 but left no finished record", log)
        return Status(FAILED, f"{describe_exit(int(code))}: {last_error_line(log)}", log)
    if slurm_id and queue is not None:
        return Status(NOT_STARTED, f"slurm job {slurm_id} left the queue without starting (cancelled, or its "
                                   "dependency failed)")
    return Status(NOT_STARTED)


def statuses(suite: Suite, jobs: Iterable[Job], hashes: records.Hashes,
             queue: Optional[Queue] = None) -> Dict[str, Status]:
    """The status of every job in ``jobs`` and of each pretraining job one of them starts
    from (dependency decisions need it, whatever was selected)."""
    jobs = list(jobs)
    by_key = suite.by_key()
    wanted = {j.key for j in jobs}
    # by key, once each (jobs are dataclasses, not hashable)
    deps = {j.depends_on: by_key[j.depends_on] for j in jobs if j.depends_on and j.depends_on not in wanted}
    out = {job.key: status_of(suite, job, hashes, queue) for job in [*jobs, *deps.values()]}
    for job in jobs:  # say why a transfer job cannot start yet
        dep = out.get(job.depends_on) if job.depends_on else None
        if out[job.key].state == NOT_STARTED and dep is not None and dep.state != DONE:
            out[job.key].detail = out[job.key].detail or f"waits for {job.depends_on} ({dep.state})"
    return out


def blocked_by(job: Job, st: Dict[str, Status], to_run: set, slurm: bool) -> Optional[str]:
    """Why a job selected to run cannot run in this invocation (None: it can): its
    pretraining is neither done nor run now, and not a Slurm job it can wait for."""
    dep = job.depends_on
    if dep is None or dep in to_run or st[dep].state == DONE:
        return None
    if slurm and st[dep].state in (QUEUED, RUNNING) and st[dep].detail.startswith("slurm job"):
        return None  # afterok on the job submitted by an earlier invocation
    return f"its pretraining {dep} is {st[dep].state}" + (f" ({st[dep].detail})" if st[dep].detail else "")


class Lock:
    """One runner per output_root at a time (a second would start or submit the same jobs)."""

    def __init__(self, suite: Suite):
        self.path = suite.state_dir / "runner.lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "?"
            self.file.close()
            raise SuiteError(f"another `suite run` (pid {holder}) is running on {self.path.parent.parent}; "
                             "wait for it or stop it first") from None
        self.file.truncate(0)
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc):
        self.file.close()

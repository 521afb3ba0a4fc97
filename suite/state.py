"""What the runner knows about each job, and the one status rule for both executors.

Bookkeeping lives under ``<output_root>/.suite/jobs/<key>/``:

* ``submitted.json``: written by the runner when it hands the job to Slurm
  (``slurm_job_id``, ``submitted``) — Slurm's own accounting (sacct) is not needed;
* ``attempt.json``: written by the job itself when an attempt starts and ends
  (``n``, ``executor``, ``host``, ``pid``, ``slurm_job_id``, ``started``, ``ended``, ``exit_code``);
* ``log.txt``: the entry point's stdout and stderr, every attempt appended after a header line.

Finished and stale come from the run records (``records.is_finished``,
``records.started_from``), never from the bookkeeping.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import records
from common.files import file_sha256, read_json_or_none, write_json

from .spec import Job, Suite

DONE, STALE, RUNNING, QUEUED, FAILED, NOT_STARTED = "done", "stale", "running", "queued", "failed", "not started"
STATES = (DONE, STALE, RUNNING, QUEUED, FAILED, NOT_STARTED)

# Lines of a log that say what went wrong: the entry points' one-line errors, a Python
# exception's last line, the kernel's or the shell's word on a killed process.
_ERROR_LINE = re.compile(r"^(error: |[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b|Killed\b|.*\bTraceback\b)")


def job_book(suite: Suite, job: Job) -> Path:
    return suite.book / "jobs" / job.key


def log_path(suite: Suite, job: Job, rank: int = 0) -> Path:
    return job_book(suite, job) / ("log.txt" if rank == 0 else f"log.rank{rank}.txt")


def read_submission(suite: Suite, job: Job) -> Optional[dict]:
    return read_json_or_none(job_book(suite, job) / "submitted.json")


def read_attempt(suite: Suite, job: Job) -> Optional[dict]:
    return read_json_or_none(job_book(suite, job) / "attempt.json")


def write_submission(suite: Suite, job: Job, slurm_job_id: str, name: str) -> None:
    book = job_book(suite, job)
    book.mkdir(parents=True, exist_ok=True)
    write_json(book / "submitted.json", {"executor": "slurm", "slurm_job_id": slurm_job_id, "name": name,
                                         "submitted": time.time()})


def start_attempt(suite: Suite, job: Job, executor: str, pid: int, command, slurm_job_id: Optional[str] = None,
                  n: Optional[int] = None) -> dict:
    """Record an attempt as started (``n``: rewrite attempt ``n``, e.g. with the child's pid)."""
    book = job_book(suite, job)
    book.mkdir(parents=True, exist_ok=True)
    if n is None:
        n = int((read_attempt(suite, job) or {}).get("n", 0)) + 1
    attempt = {"n": n, "executor": executor, "host": socket.gethostname(), "pid": pid,
               "slurm_job_id": slurm_job_id, "started": time.time(), "ended": None, "exit_code": None,
               "command": list(map(str, command))}
    write_json(book / "attempt.json", attempt)
    return attempt


def end_attempt(suite: Suite, job: Job, attempt: dict, exit_code: int, note: str = "") -> None:
    write_json(job_book(suite, job) / "attempt.json",
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
    """The local attempt's process is still running (on this host)."""
    if attempt.get("host") != socket.gethostname() or not attempt.get("pid"):
        return False
    try:
        os.kill(int(attempt["pid"]), 0)
    except (OSError, ValueError):
        return False
    return True


@dataclass
class Status:
    state: str
    detail: str = ""
    log: Optional[Path] = None


Queue = Dict[str, Tuple[str, str, str]]  # slurm job id -> (state, reason, job name), from squeue


class Checkpoints:
    """Each checkpoint hashed once per invocation (they are hundreds of MB)."""

    def __init__(self, hasher: Callable[[Path], str] = file_sha256):
        self._hasher, self._cache = hasher, {}

    def sha256(self, path: Path) -> Optional[str]:
        if path not in self._cache:
            self._cache[path] = self._hasher(path) if path.is_file() else None
        return self._cache[path]


def stale_reason(job: Job, checkpoints: Checkpoints) -> Optional[str]:
    """Why a finished transfer run no longer stands for its checkpoint (None: it does)."""
    if not job.is_transfer:
        return None
    started = records.started_from(job.run_dir)
    redo = f"delete {job.run_dir} to rerun it"
    if started is None:
        return f"its record names no starting checkpoint sha256; {redo}"
    now = checkpoints.sha256(job.checkpoint)
    if now is not None and now != started:
        return f"{job.checkpoint} changed after this run; {redo}"
    return None


def status_of(suite: Suite, job: Job, checkpoints: Checkpoints, queue: Optional[Queue] = None) -> Status:
    """done / stale / running / queued / failed / not started, from the run record, the
    bookkeeping and (for Slurm jobs) squeue's answer."""
    if records.is_finished(job.run_dir):
        why = stale_reason(job, checkpoints)
        return Status(STALE, why) if why else Status(DONE)
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


def statuses(suite: Suite, jobs, checkpoints: Checkpoints, queue: Optional[Queue] = None) -> Dict[str, Status]:
    out = {job.key: status_of(suite, job, checkpoints, queue) for job in jobs}
    for job in jobs:  # say why a transfer job cannot start yet
        dep = out.get(job.depends_on) if job.depends_on else None
        if out[job.key].state == NOT_STARTED and dep is not None and dep.state != DONE:
            out[job.key].detail = out[job.key].detail or f"waits for {job.depends_on} ({dep.state})"
    return out

"""The local executor: the jobs run on this machine as subprocesses, in dependency
order, up to ``--jobs`` CPU jobs at once and as many GPU jobs as the free GPUs
allow (each gets its own ``CUDA_VISIBLE_DEVICES``)."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Dict, List, Optional

import records

from . import state
from .launch import command, run_attempt
from .spec import Job, Suite, SuiteError


def visible_gpus() -> List[str]:
    """The GPUs this machine lets us use: CUDA_VISIBLE_DEVICES, else nvidia-smi's list."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def check_resources(jobs: List[Job], gpus: List[str]) -> Optional[str]:
    """Why this machine cannot run some job (None: it can)."""
    for job in jobs:
        if job.resources.gpus_per_job > len(gpus):
            return (f"{job.stage} jobs ask for {job.resources.gpus_per_job} GPUs (gpus_per_job) and this machine "
                    f"has {len(gpus)} usable (CUDA_VISIBLE_DEVICES / nvidia-smi -L; --gpus to say otherwise)")
    return None


class Lock:
    """One local runner per output_root at a time (the second would start the same jobs)."""

    def __init__(self, suite: Suite):
        suite.state_dir.mkdir(parents=True, exist_ok=True)
        self.path = suite.state_dir / "local.lock"

    def __enter__(self):
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


def run_local(suite: Suite, todo: List[Job], done: set, jobs: int, gpus: List[str], say) -> Dict[str, str]:
    """Run ``todo`` (dependencies first; ``done`` holds the keys already finished);
    returns key -> outcome ('done', 'failed: ...', 'not started: ...')."""
    outcome: Dict[str, str] = {}
    waiting = list(todo)
    free_gpus = list(gpus)
    running: Dict[Future, tuple] = {}
    procs: Dict[str, subprocess.Popen] = {}
    lock = threading.Lock()
    total = len(todo)

    def blocked(job: Job) -> Optional[str]:
        """Why ``job`` can never start in this invocation (None: it may)."""
        if job.depends_on is not None and job.depends_on in outcome and job.depends_on not in done:
            return f"{job.depends_on} did not finish"
        return None

    def fits(job: Job) -> bool:
        if job.depends_on is not None and job.depends_on not in done:
            return False
        if job.resources.gpus_per_job:
            return len(free_gpus) >= job.resources.gpus_per_job
        return sum(1 for (j, _, _) in running.values() if not j.resources.gpus_per_job) < jobs

    def env_for(assigned: List[str]) -> Dict[str, str]:
        env = dict(os.environ)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(assigned)
        if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:  # share the cores, do not oversubscribe them
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
        return env

    def register(key):
        def on_start(proc):
            with lock:
                procs[key] = proc
        return on_start

    started = 0
    with ThreadPoolExecutor(max_workers=max(1, jobs + len(gpus))) as pool:
        try:
            while True:
                for job in list(waiting):
                    why = blocked(job)
                    if why:
                        waiting.remove(job)
                        outcome[job.key] = f"not started: {why}"
                        say(f"[suite] not started {job.key}: {why}")
                    elif fits(job):
                        waiting.remove(job)
                        assigned = [free_gpus.pop(0) for _ in range(job.resources.gpus_per_job)]
                        started += 1
                        say(f"[suite {started}/{total}] start {job.key} (log {state.log_path(suite, job)})")
                        fut = pool.submit(run_attempt, suite, job, command(job, "torchrun"), "local",
                                          env_for(assigned), on_start=register(job.key))
                        running[fut] = (job, assigned, time.time())
                if not running:  # nothing runs, so nothing left can start
                    for job in waiting:
                        outcome[job.key] = f"not started: waits for {job.depends_on}"
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    job, assigned, t0 = running.pop(fut)
                    free_gpus.extend(assigned)
                    procs.pop(job.key, None)
                    fut.result()
                    if records.is_finished(job.run_dir):
                        done.add(job.key)
                        outcome[job.key] = "done"
                        say(f"[suite] done {job.key} in {time.time() - t0:.0f}s")
                    else:
                        st = state.status_of(suite, job, state.Checkpoints())
                        outcome[job.key] = f"failed: {st.detail}"
                        say(f"[suite] FAILED {job.key}: {st.detail} (log {st.log})")
        except KeyboardInterrupt:
            with lock:
                for proc in procs.values():
                    proc.terminate()
            raise
    return outcome

"""Command lines of a job for each way of launching it, and running one attempt of it
as a subprocess (its output into the job's log, its start and end into the bookkeeping)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Callable, Dict, List, Optional

from . import state
from .spec import REPO, Job, Suite

PYTHON = sys.executable


def command(job: Job, launcher: str = "none") -> List[str]:
    """The job's command line.

    ``none``: one process (CPU, or one GPU); ``torchrun``: one process per GPU of this
    machine (``gpus_per_job`` of them); ``slurm``: one of the tasks srun starts (one per
    GPU), which take their rank from SLURM_PROCID and friends.
    """
    tasks = job.resources.tasks
    if job.entry == "tools/train.py":
        program = [str(REPO / "tools" / "train.py")]
        mm_launcher = {"torchrun": ["--launcher", "pytorch"], "slurm": ["--launcher", "slurm"]}.get(launcher, [])
        # --cfg-options takes every word after it: the launcher flag goes before
        split = job.argv.index("--cfg-options") if "--cfg-options" in job.argv else len(job.argv)
        argv = job.argv[:split] + (mm_launcher if tasks > 1 else []) + job.argv[split:]
    else:
        program, argv = ["-m", job.entry], job.argv
    if launcher == "torchrun" and tasks > 1:
        return [PYTHON, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={tasks}", *program, *argv]
    return [PYTHON, "-u", *program, *argv]


def ignore_preemption_signal() -> None:
    """In the child: Slurm signals every process of the job before a preemption or the
    time limit; only submitit's handler (in the parent) should act on it."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def run_attempt(suite: Suite, job: Job, cmd: List[str], executor: str, env: Optional[Dict[str, str]] = None,
                rank: int = 0, slurm_job_id: Optional[str] = None,
                on_start: Optional[Callable[[subprocess.Popen], None]] = None) -> int:
    """Run ``cmd`` to its end (blocking), logging to the job's log; the exit code.
    Rank 0 records the attempt; other ranks only log (to log.rank<N>.txt). Locally the
    attempt names the child's pid (so that status can tell a run that outlived its
    runner), under Slurm the wrapper's (Slurm knows the job)."""
    attempt = {"n": 0, "host": os.uname().nodename, "pid": os.getpid(), "slurm_job_id": slurm_job_id,
               "command": cmd}
    if rank == 0:
        attempt = state.start_attempt(suite, job, executor, os.getpid(), cmd, slurm_job_id)
    with state.open_log(suite, job, attempt, rank) as log:
        preexec = ignore_preemption_signal if executor == "slurm" else None
        proc = subprocess.Popen(cmd, cwd=suite.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=preexec)
        if rank == 0 and executor == "local":
            attempt = state.start_attempt(suite, job, executor, proc.pid, cmd, slurm_job_id, n=attempt["n"])
        if on_start is not None:
            on_start(proc)
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:  # the wrapper is leaving (requeue, cancel): do not leave the run behind
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                if rank == 0:
                    state.end_attempt(suite, job, attempt, proc.returncode, "stopped: requeued or cancelled")
    if rank == 0:
        state.end_attempt(suite, job, attempt, code)
    return code

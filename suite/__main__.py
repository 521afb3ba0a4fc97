"""The suite runner: the whole matrix of a suite file, locally or on Slurm.

    python -m suite run suites/demo.yaml                         # on this machine, dependencies first
    python -m suite run suites/paper.yaml --executor slurm       # job arrays, afterok on pretraining
    python -m suite run suites/paper.yaml --dry_run --only det/  # the plan: jobs, dependencies, resources
    python -m suite status suites/paper.yaml                     # every job: done / running / queued / ...

Rerunning ``run`` continues a matrix: finished runs are skipped, interrupted ones
resume (every command carries ``--resume auto``), queued or running Slurm jobs are
left alone, and finished transfer runs whose pretrained checkpoint changed since
are reported as stale and left as they are (delete the run dir to redo one).
Exit code: 0 when every selected job is done (or submitted, on Slurm without
``--wait``), 1 when some failed, are stale or could not start, 2 for bad input.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from common.errors import run_cli

from . import state
from .launch import command
from .spec import Job, Suite, SuiteError, load_suite, select


def rel(path) -> str:
    """A path as short as it can be said from here."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def short(arg: str) -> str:
    """A command-line word with its absolute path (alone or after key=) said relative to here."""
    key, eq, value = arg.rpartition("=") if "=" in arg and not arg.startswith("/") else ("", "", arg)
    return key + eq + (rel(value) if value.startswith("/") else value)


def say(line: str) -> None:
    print(line, flush=True)


def _queue_if_reachable(suite: Suite, jobs: List[Job], required: bool) -> Optional[state.Queue]:
    """squeue's answer when Slurm is needed (``required``) or some job was submitted to it."""
    from_slurm = required or any((state.job_book(suite, j) / "submitted.json").is_file() for j in jobs)
    if not from_slurm:
        return None
    from . import slurm
    try:
        slurm.find_slurm()
        return slurm.queue()
    except SuiteError:
        if required:
            raise
        say("note: some jobs were submitted to Slurm, which does not answer here; their states come from "
            "their own records")
        return None


def _counts(st: Dict[str, state.Status]) -> str:
    kinds = [s.state for s in st.values()]
    return ", ".join(f"{kinds.count(k)} {k}" for k in state.STATES if k in kinds)


def _rerun_line(args, st: Dict[str, state.Status], executor: str) -> Optional[str]:
    if not any(s.state == state.FAILED for s in st.values()):
        return None
    extra = f" --executor {executor}" if executor != "local" else ""
    extra += f" --output_root {args.output_root}" if args.output_root else ""
    return f"rerun the failed ones: python -m suite run {rel(args.suite)} --failed{extra}"


def print_table(jobs: List[Job], st: Dict[str, state.Status]) -> None:
    width = max(len(j.key) for j in jobs)
    for job in jobs:
        s = st[job.key]
        line = f"{job.key:<{width}}  {s.state:<11}  {s.detail}"
        if s.state == state.FAILED and s.log:
            line += f"  (log {rel(s.log)})"
        print(line.rstrip())
    print(f"{len(jobs)} jobs: {_counts(st)}")


def _report_problems(st: Dict[str, state.Status], args) -> int:
    problems = {k: s for k, s in st.items() if s.state in (state.FAILED, state.STALE)}
    for key, s in problems.items():
        print(f"  {s.state} {key}: {s.detail}" + (f" (log {rel(s.log)})" if s.log and s.state == state.FAILED
                                                  else ""), file=sys.stderr)
    line = _rerun_line(args, st, args.executor)
    if line:
        print(line)
    unfinished = [s for s in st.values() if s.state not in (state.DONE, state.QUEUED, state.RUNNING)]
    return 1 if unfinished else 0


def plan(suite: Suite, jobs: List[Job], st: Dict[str, state.Status], executor: str) -> None:
    launcher = "slurm" if executor == "slurm" else "torchrun"
    for job in jobs:
        s = st[job.key]
        acts = s.state in (state.FAILED, state.NOT_STARTED)
        print(f"{job.key}: {'would run' if acts else s.state}"
              + (f" after {job.depends_on}" if acts and job.depends_on and st[job.depends_on].state != state.DONE
                 else "") + f" [{job.resources.describe()}]")
        if acts:
            print("    " + " ".join(map(short if executor == "local" else str, command(job, launcher)[1:])))


def wait_for(suite: Suite, jobs: List[Job], poll: float, checkpoints: state.Checkpoints) -> Dict[str, state.Status]:
    """Until none of ``jobs`` is in Slurm's queue (a run's record may say finished a moment
    before its job ends); says each change of state."""
    from . import slurm
    shown: Dict[str, str] = {}
    while True:
        queue = slurm.queue()
        st = state.statuses(suite, jobs, checkpoints, queue)
        for job in jobs:
            if shown.get(job.key) != st[job.key].state:
                if job.key in shown:
                    detail = st[job.key].detail if st[job.key].state != state.DONE else ""
                    say(f"[suite] {st[job.key].state} {job.key}" + (f": {detail}" if detail else ""))
                shown[job.key] = st[job.key].state
        ids = {(state.read_submission(suite, j) or {}).get("slurm_job_id") for j in jobs}
        if not ids & set(queue):
            return st
        time.sleep(poll)


def cmd_run(args) -> int:
    suite = load_suite(args.suite, args.output_root)
    jobs = select(suite, args.only or ())
    slurm_mode = args.executor == "slurm"
    queue = _queue_if_reachable(suite, jobs, slurm_mode and not args.dry_run)
    checkpoints = state.Checkpoints()
    st = state.statuses(suite, jobs, checkpoints, queue)
    if args.failed:
        failed = {j.key for j in jobs if st[j.key].state == state.FAILED}
        if not failed:
            say(f"nothing to do: no failed job among {len(jobs)} ({_counts(st)})")
            return 0
        # with what could not start because of them, and the unfinished pretraining they need
        needed = failed | {j.key for j in jobs if j.depends_on in failed and st[j.key].state == state.NOT_STARTED}
        needed |= {j.depends_on for j in jobs if j.key in needed and j.depends_on
                   and st[j.depends_on].state != state.DONE}
        jobs = [j for j in jobs if j.key in needed]
        st = {j.key: st[j.key] for j in jobs}
    todo = [j for j in jobs if st[j.key].state in (state.FAILED, state.NOT_STARTED)]

    if slurm_mode:
        from . import slurm
        try:
            if args.dry_run:
                slurm.find_slurm()
            problem = slurm.check_resources(todo, slurm.partitions())
        except SuiteError as exc:  # only a dry run gets here: it says so instead of failing
            problem = str(exc)
    else:
        from .local import check_resources, visible_gpus
        gpus = visible_gpus() if args.gpus is None else [str(i) for i in range(args.gpus)]
        problem = check_resources(todo, gpus)
    if args.dry_run:
        plan(suite, jobs, st, args.executor)
        say(f"plan: {len(todo)} of {len(jobs)} jobs would run ({_counts(st)})")
        if problem:
            say(f"note: the {args.executor} executor would refuse this: {problem}")
        return 0
    if problem:
        raise SuiteError(f"--executor {args.executor}: {problem}")
    if not todo:
        busy = [k for k, s in st.items() if s.state in (state.QUEUED, state.RUNNING)]
        say(f"nothing to do: {len(jobs)} jobs of {rel(args.suite)}: {_counts(st)}"
            + (" (rerun when they leave the queue)" if busy and not args.wait else ""))
        if busy and args.wait and slurm_mode:
            st = wait_for(suite, jobs, args.poll, checkpoints)
        return _report_problems(st, args)

    say(f"{len(todo)} of {len(jobs)} jobs to run ({_counts(st)}); bookkeeping and logs under {rel(suite.book)}")
    if slurm_mode:
        from . import slurm
        ids, later = slurm.submit(suite, todo, st, say)
        for key in later:
            say(f"[suite] not submitted {key}: its pretraining runs outside Slurm; rerun when it is done")
        if not args.wait:
            say(f"submitted {len(ids)} jobs; follow them with: python -m suite status {rel(args.suite)}")
            return 0 if not later else 1
        st = wait_for(suite, jobs, args.poll, checkpoints)
    else:
        from .local import Lock, run_local
        done = {k for k, s in st.items() if s.state == state.DONE}
        with Lock(suite):
            run_local(suite, todo, done, args.jobs, gpus, say)
        st = state.statuses(suite, jobs, state.Checkpoints())
    say(f"{len(jobs)} jobs: {_counts(st)}")
    return _report_problems(st, args)


def cmd_status(args) -> int:
    suite = load_suite(args.suite, args.output_root)
    jobs = select(suite, args.only or ())
    queue = _queue_if_reachable(suite, jobs, False)
    st = state.statuses(suite, jobs, state.Checkpoints(), queue)
    print_table(jobs, st)
    line = _rerun_line(args, st, "slurm" if queue is not None else "local")
    if line:
        print(line)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser("python -m suite", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("suite", type=Path, help="suite file (YAML), e.g. suites/paper.yaml")
    common.add_argument("--only", action="append", metavar="PREFIX",
                        help="jobs whose key starts so, e.g. det/ or cls/finetune/cifar100 (repeatable); "
                             "the pretraining they start from comes along")
    common.add_argument("--output_root", default=None, help="instead of the suite file's output_root")
    r = sub.add_parser("run", parents=[common], help="run (or submit) every job that is not finished")
    r.add_argument("--executor", choices=["local", "slurm"], default="local")
    r.add_argument("--dry_run", action="store_true", help="print the plan (jobs, dependencies, resources) only")
    r.add_argument("--failed", action="store_true",
                   help="only the failed jobs, the jobs that waited for them, and unfinished pretraining they need")
    r.add_argument("--jobs", type=int, default=1, help="local: CPU jobs at once (default 1)")
    r.add_argument("--gpus", type=int, default=None,
                   help="local: GPUs to use (default: CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists)")
    r.add_argument("--wait", action="store_true", help="slurm: stay until every job left the queue")
    r.add_argument("--poll", type=float, default=10.0, help="slurm --wait: seconds between squeue calls")
    sub.add_parser("status", parents=[common], help="a table of every job's state")
    args = p.parse_args(argv)
    code = 0

    def entry():
        nonlocal code
        if args.command == "run" and args.jobs < 1:
            raise SuiteError(f"--jobs {args.jobs}: expected at least 1")
        code = (cmd_run if args.command == "run" else cmd_status)(args)

    return run_cli(entry) or code


if __name__ == "__main__":
    sys.exit(main())

"""The Slurm executor, through submitit (the paper's launcher).

One submission per stage and pretraining run: a job array of that stage's jobs
starting from that run (all seeds, tasks, recipes, datasets), with
``afterok`` on the pretraining job when it is not finished yet, so a failed
pretraining stops only its own transfers (``kill-on-invalid-dep``: they leave the
queue instead of waiting forever). Pretraining jobs are one array per stage.

Each array task runs ``SuiteTask``, a ``submitit.helpers.Checkpointable``: before a
preemption or the time limit Slurm sends USR2, submitit calls ``checkpoint()`` and
requeues the job, and the requeued job runs the same command, which always
carries ``--resume auto`` (``--resume`` for tools/train.py). Multi-GPU jobs run one
task per GPU; each task's torchrun variables (rendezvous and ranks) come from
submitit's ``TorchDistributedEnvironment``.

sacct is not needed (clusters without accounting have none): job states come from
squeue and from the attempts the jobs record themselves.
"""
from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import submitit

import records

from . import state
from .launch import command, run_attempt
from .spec import Job, Resources, Suite, SuiteError, format_minutes, parse_time

# Requeues after a time limit before submitit gives up on a job (preemptions do not count).
MAX_TIMEOUT_REQUEUES = 20


def _run(cmd: List[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def where_slurm_was_looked_for() -> str:
    conf = os.environ.get("SLURM_CONF")
    return f"SLURM_CONF={conf}" if conf else "SLURM_CONF unset, so /etc/slurm/slurm.conf"


def find_slurm() -> None:
    """Raise a SuiteError saying how Slurm was looked for, unless its controller answers."""
    for tool in ("sinfo", "squeue", "sbatch", "srun", "scontrol"):
        if shutil.which(tool) is None:
            raise SuiteError(f"--executor slurm: no Slurm reachable: {tool} is not on PATH")
    try:
        res = _run(["sinfo", "-h", "-o", "%P"])
    except subprocess.TimeoutExpired:
        raise SuiteError(f"--executor slurm: no Slurm reachable: sinfo did not answer within 60 s "
                         f"({where_slurm_was_looked_for()})") from None
    if res.returncode != 0 or not res.stdout.strip():
        why = (res.stderr.strip().splitlines() or ["no partition listed"])[-1]
        raise SuiteError(f"--executor slurm: no Slurm reachable: sinfo failed ({where_slurm_was_looked_for()}): {why}")


@dataclass
class Partition:
    name: str
    default: bool = False
    nodes: int = 0
    cpus_per_node: int = 0
    gpus_per_node: int = 0
    max_minutes: Optional[int] = None   # None: no limit


def _minutes(limit: str) -> Optional[int]:
    """A partition's time limit as sinfo prints it, in minutes (None: no limit)."""
    if limit in ("infinite", "UNLIMITED", "n/a", ""):
        return None
    return parse_time(limit, f"sinfo's time limit {limit!r}")


def partitions() -> Dict[str, Partition]:
    """What sinfo says each partition offers (its largest node; nodes summed)."""
    out: Dict[str, Partition] = {}
    for line in _run(["sinfo", "-h", "-o", "%P|%D|%c|%G|%l"]).stdout.splitlines():
        name, nodes, cpus, gres, limit = line.split("|")
        default, name = name.endswith("*"), name.rstrip("*")
        p = out.setdefault(name, Partition(name, default))
        p.nodes += int(nodes)
        p.cpus_per_node = max(p.cpus_per_node, int(re.sub(r"\D.*", "", cpus) or 0))
        gpus = re.findall(r"gpu(?::[^:,(]+)?:(\d+)", gres)
        p.gpus_per_node = max(p.gpus_per_node, max(map(int, gpus), default=0))
        p.max_minutes = _minutes(limit)
    return out


def check_resources(jobs: List[Job], parts: Dict[str, Partition]) -> Optional[str]:
    """Why the cluster cannot run some job, as far as sinfo tells (None: it can)."""
    seen = set()
    for job in jobs:
        res = job.resources
        if (job.stage, res) in seen:
            continue
        seen.add((job.stage, res))
        where = f"{job.stage}.resources"
        name = res.partition or next((p.name for p in parts.values() if p.default), None)
        if name is None or name not in parts:
            return (f"{where}: partition {name!r} is not among the cluster's ({', '.join(parts)})" if name else
                    f"{where}: no partition given and the cluster has no default one")
        p = parts[name]
        if res.nodes > p.nodes:
            return f"{where}: {res.nodes} nodes asked, partition {name} has {p.nodes}"
        if res.tasks_per_node * res.cpus_per_task > p.cpus_per_node:
            return (f"{where}: {res.tasks_per_node} task(s) x {res.cpus_per_task} cpus_per_task per node asked, "
                    f"the nodes of partition {name} have {p.cpus_per_node} CPUs")
        if res.gpus_per_node > p.gpus_per_node:
            return (f"{where}: {res.gpus_per_node} GPUs per node asked, the nodes of partition {name} have "
                    f"{p.gpus_per_node} (sinfo's GRES)")
        if p.max_minutes is not None and res.time_min > p.max_minutes:
            return (f"{where}: time {format_minutes(res.time_min)} is past partition {name}'s limit "
                    f"{format_minutes(p.max_minutes)}")
    return None


def queue() -> state.Queue:
    """This user's jobs in the queue: job id (array tasks as <array>_<index>) -> (state, reason, name)."""
    res = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T|%r|%j"])
    if res.returncode != 0:
        raise SuiteError(f"squeue failed ({where_slurm_was_looked_for()}): "
                         f"{(res.stderr.strip().splitlines() or ['no message'])[-1]}")
    out = {}
    for line in res.stdout.splitlines():
        job_id, st, reason, name = line.split("|", 3)
        out[job_id] = (st, "" if reason in ("None", "(null)") else reason, name)
    return out


class SuiteTask(submitit.helpers.Checkpointable):
    """One job of the suite inside Slurm (every task of it runs this). Checkpointable's
    ``checkpoint()`` resubmits it as it is: the run keeps its own checkpoints, and the
    command resumes from them."""

    def __init__(self, suite: Suite, job: Job):
        # Only where the bookkeeping goes: the whole matrix would be pickled into every job.
        self.suite, self.job = Suite(suite.path, suite.output_root, workdir=suite.workdir), job

    def __call__(self) -> str:
        env_info = submitit.JobEnvironment()
        rank = env_info.global_rank
        if records.is_finished(self.job.run_dir):  # requeued after it had finished
            return "done"
        # torchrun's variables (MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK), which srun does not set, from
        # submitit; every GPU stays visible (the entry points pick theirs by LOCAL_RANK)
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        env = dict(os.environ)
        if "SLURM_CPUS_PER_TASK" in env:  # without cgroups nothing else keeps threads to the job's CPUs
            env.setdefault("OMP_NUM_THREADS", env["SLURM_CPUS_PER_TASK"])
        code = run_attempt(self.suite, self.job, command(self.job, "slurm"), "slurm", env, rank, env_info.job_id)
        if code != 0:
            raise RuntimeError(f"{self.job.key}: {state.describe_exit(code)}; "
                               f"log {state.log_path(self.suite, self.job, rank)}")
        return "done"


def _parameters(res: Resources, name: str, dependency: Optional[str]) -> dict:
    params = {"job_name": name, "time": res.time_min, "nodes": res.nodes, "ntasks_per_node": res.tasks_per_node,
              "cpus_per_task": res.cpus_per_task, "signal_delay_s": 120,
              "additional_parameters": {"kill_on_invalid_dep": "yes", "requeue": True}}
    optional = {"gpus_per_node": res.gpus_per_node or None, "partition": res.partition, "account": res.account,
                "qos": res.qos, "constraint": res.constraint, "mem": res.mem_gb and f"{int(res.mem_gb * 1024)}MB",
                "array_parallelism": res.array_parallelism, "dependency": dependency}
    params.update({k: v for k, v in optional.items() if v})
    return params


def submit(suite: Suite, todo: List[Job], statuses: Dict[str, state.Status], say) -> Tuple[Dict[str, str], List[str]]:
    """Submit ``todo``: pretraining first, then per transfer stage one array per pretraining
    run. Returns key -> slurm job id, and the keys left for later (their pretraining
    runs somewhere Slurm cannot depend on)."""
    ids: Dict[str, str] = {}
    later: List[str] = []
    groups: Dict[tuple, List[Job]] = {}
    by_key = suite.by_key()
    for job in todo:  # pretraining jobs come first in a suite, so their ids exist when transfers need them
        groups.setdefault((job.stage, job.depends_on, job.resources), []).append(job)
    for (stage, dep, res), jobs in groups.items():
        dependency = None
        if dep is not None and statuses[dep].state != state.DONE:
            dep_id = ids.get(dep)
            if dep_id is None and statuses[dep].state in (state.QUEUED, state.RUNNING) \
                    and statuses[dep].detail.startswith("slurm job"):  # submitted by an earlier invocation
                dep_id = (state.read_submission(suite, by_key[dep]) or {}).get("slurm_job_id")
            if dep_id is None:  # e.g. running under the local executor: nothing Slurm can wait for
                later += [j.key for j in jobs]
                continue
            dependency = f"afterok:{dep_id}"
        name = f"{stage}:{dep.split('/')[1] if dep else suite.output_root.name}"
        # one executor per array: submitit's parameters only accumulate
        executor = submitit.SlurmExecutor(folder=suite.state_dir / "slurm", max_num_timeout=MAX_TIMEOUT_REQUEUES)
        executor.update_parameters(**_parameters(res, name, dependency))
        try:
            with executor.batch():
                submitted = [executor.submit(SuiteTask(suite, job)) for job in jobs]
        except submitit.core.utils.FailedJobError as exc:  # sbatch said no; what was submitted is recorded
            why = (str(exc).strip().splitlines() or ["no message"])[-1]
            raise SuiteError(f"sbatch refused the {stage} jobs of {dep or 'pretraining'}: {why}") from None
        for job, sj in zip(jobs, submitted):
            ids[job.key] = sj.job_id
            state.write_submission(suite, job, sj.job_id, name)
        first, last = submitted[0].job_id, submitted[-1].job_id
        say(f"[suite] submitted {len(jobs)} {stage} job{'s' if len(jobs) > 1 else ''} "
            f"({first}{' .. ' + last if len(jobs) > 1 else ''}; {res.describe()}"
            + (f"; after {dependency.split(':', 1)[1]} = {dep}" if dependency else "") + ")")
    return ids, later

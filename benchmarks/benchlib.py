"""What every benchmark script shares: alternating timing with median and spread,
ratios of paired measurements, peak memory, child processes and the header.

A ratio is always measured side by side in one run: the cases are called in
turn (A B, B A, A B, ...), so a change of machine load hits both and neither
always goes first, and each ratio printed is the median of the per-round ratios
with their range.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from typing import Callable, Dict, List, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable


def header(what: str) -> str:
    """Machine, date and load: printed first by every benchmark."""
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"# {what}\n# {date.today()}  {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
            f"{gpu}; torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load}")


def round_order(items, r: int) -> list:
    """The order of the cases in round ``r``: as given in even rounds, reversed in odd ones."""
    items = list(items)
    return items if r % 2 == 0 else items[::-1]


def add_rounds_argument(parser, default: int) -> None:
    """``--rounds``, even: half the rounds run the cases in each order, so the medians
    of the per-round ratios do not lean to either order."""
    def even(text: str) -> int:
        n = int(text)
        if n < 2 or n % 2:
            raise ValueError
        return n
    even.__name__ = "even number of rounds (2 or more)"
    parser.add_argument("--rounds", type=even, default=default, help=f"even (default {default})")


def add_case_arguments(parser, threads: bool = True) -> None:
    """``--threads`` (one by default: CPU time then measures the work whatever the
    load) and ``--memory`` (the child mode of ``memory_of_cases``)."""
    if threads:
        parser.add_argument("--threads", type=int, default=1,
                            help="torch threads; with 1, CPU time measures the work whatever the machine's load")
    parser.add_argument("--memory", help="(child) run one case and report its peak memory")


def alternate(cases: Dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
              cpu: Dict[str, List[float]] = None) -> Dict[str, List[float]]:
    """Seconds of each call of each case, the cases called in turn ``rounds`` times
    after ``warmup`` untimed rounds, every other round in reverse order (A B, B A,
    A B, ...: going first or second costs a few per cent here, e.g. a colder cache,
    and the reversal cancels it from the medians). ``cpu``, when given, receives the
    process's CPU seconds of each call (for single-threaded work: what it costs on
    a core of its own, whatever the machine's load)."""
    times: Dict[str, List[float]] = {name: [] for name in cases}
    for r in range(warmup + rounds):
        for name, fn in round_order(cases.items(), r):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
                if cpu is not None:
                    cpu.setdefault(name, []).append(time.process_time() - c0)
    return times


def timed(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Mean seconds of one call (a single case, nothing to alternate with)."""
    return statistics.mean(alternate({"fn": fn}, repeat, warmup)["fn"])


def spread(values: Sequence[float]) -> str:
    """'median (min-max)' of the values, 3 significant digits."""
    return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def ratio(num: Sequence[float], den: Sequence[float]) -> List[float]:
    """Per-round ratios of two paired series."""
    return [a / b for a, b in zip(num, den)]


def ratio_line(name: str, values: Sequence[float], target: str) -> str:
    return f"{name}: {spread(values)}  [target {target}]"


_BASELINE = {}


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def mark_baseline() -> None:
    """Remember the RSS after importing torch and timm (about 0.7 GiB with this
    torch's CUDA libraries, GPU or not), so that peaks can be given above it."""
    import timm  # noqa: F401
    import torch  # noqa: F401
    _BASELINE["rss_mib"] = _rss_mib()
    _BASELINE["children_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def peak_memory() -> dict:
    """Peak RSS of this process, its RSS after the imports (``mark_baseline``) and
    the peak of its finished children, in MiB; the CUDA peak where a GPU exists."""
    out = {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "children_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
           "after_imports_mib": _BASELINE.get("rss_mib"),
           # `import torch` leaves a child of its own behind: workers count only above it
           "children_before_mib": _BASELINE.get("children_rss_mib")}
    import torch
    if torch.cuda.is_available():
        out["cuda_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def memory_text(mem: dict) -> str:
    text = f"peak RSS {mem['rss_mib']:.0f} MiB"
    if mem.get("after_imports_mib"):
        text += f" ({mem['rss_mib'] - mem['after_imports_mib']:+.0f} over the imports)"
    if mem.get("children_before_mib") is not None and mem["children_rss_mib"] > mem["children_before_mib"]:
        text += f", largest worker {mem['children_rss_mib']:.0f} MiB"
    if "cuda_mib" in mem:
        text += f", CUDA peak {mem['cuda_mib']:.0f} MiB"
    return text


def emit(result: dict) -> None:
    """A child's result: one JSON line on stdout, last, with its peak memory."""
    print(json.dumps({**result, "memory": peak_memory()}), flush=True)


def run_child(argv: Sequence[str], env: dict = None, timeout: float = 1800) -> dict:
    """Run ``python argv`` (a benchmark in child mode) and return what it ``emit``-ted,
    plus ``launched`` (the wall clock just before the launch) and ``wall_s``."""
    launched = time.time()
    proc = subprocess.run([PYTHON, *map(str, argv)], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "launched": launched, "wall_s": time.time() - launched}


def memory_of_cases(script: str, names: Sequence[str], extra: Sequence[str] = ()) -> Dict[str, dict]:
    """Peak memory of each case alone: ``script --memory NAME`` in its own process
    (peaks of two cases in one process would mix)."""
    return {name: run_child([script, "--memory", name, *extra])["memory"] for name in names}

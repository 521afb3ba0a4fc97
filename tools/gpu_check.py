"""The GPU acceptance run: from a bare checkout plus a wheelhouse, on a machine whose
Python already has a CUDA torch, in one go of under 9 minutes on a 16-core GPU machine.

    bash tools/gpu_check.sh OUT_DIR [--dry-run] [--wheelhouse DIR]

Steps, each with a time budget (printed first, and with the time each took at the end):

1. setup: ``DT_TORCH=system DT_WHEELHOUSE=... bash tools/setup_env.sh`` into OUT_DIR/venv,
   building mmcv's CUDA ops for the visible GPU with all cores (its build time printed);
2. check_env: ``tools/check_env.py --device cuda`` (nms, roi_align forward + backward on CUDA);
3. gpu_tests: the GPU tests of tests/test_gpu_setup.py (mmcv's ops on CUDA vs the CPU,
   one Mask R-CNN iteration on CUDA);
4. transfer: one real-size training iteration of Mask R-CNN 1x (1333x800, batch 2) and
   UperNet (512x512, batch 2) for ViT-T, Swin-F, ConvNeXt-F (benchmarks/bench_gpu_transfer.py);
5. engine: the pretraining engine's update vs a bare timm loop on the GPU, ViT-T and
   ConvNeXt-F, 224, batch 128, fp32 and bf16, each fast path alone and all together
   (benchmarks/bench_gpu_engine.py);
6. input_pipeline: img/s per DataLoader worker on this machine's CPUs and the workers the
   measured GPU step needs (benchmarks/bench_input_pipeline.py).

It writes OUT_DIR/gpu_check.json and OUT_DIR/summary.md (and each step's log) and exits 1
if any step failed or ran out of its time. ``--dry-run`` checks the inputs (the wheelhouse
is complete for this Python, its torch is in the supported range), prints and writes the
plan, and marks every step that needs a GPU as skipped with the reason; it needs no GPU.
Without ``--dry-run`` and with no GPU visible: one line, exit 2. Stdlib only: it runs
before the venv exists (PYTHON, default python3: the interpreter that holds torch).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import mmcv_build_plan  # noqa: E402  (stdlib only at import)

TOTAL_BUDGET_S = 540    # the 9 minutes; each step's budget below, the mmcv build's from its estimate
HARD_LIMIT_S = 570      # a step is stopped when the run reaches this, so one go stays under 10 minutes
SETUP_INSTALL_S = 60    # venv + offline installs + editable install + the final check, mmcv excluded


@dataclass
class Step:
    name: str
    what: str
    budget_s: int
    needs_gpu: bool
    argv: list
    env: dict = field(default_factory=dict)
    status: str = "planned"   # planned | ok | failed | timeout | skipped
    reason: str = ""
    seconds: Optional[float] = None
    log: str = ""


def mmcv_build_budget(jobs: int) -> int:
    """Seconds for mmcv's CUDA ops for one arch with ``jobs`` compile jobs: the plan tool's model."""
    p = mmcv_build_plan
    core_min = p.CU_FILES * p.CU_SECONDS / 60 + p.REST_CORE_MINUTES
    return int(round(core_min * 60 / max(1, jobs)))


def plan_steps(out: Path, wheelhouse: Path, python: str, jobs: int) -> list[Step]:
    venv = out / "venv"
    vpy = str(venv / "bin" / "python")
    setup_env = {"DT_TORCH": "system", "DT_WHEELHOUSE": str(wheelhouse), "DT_VENV": str(venv), "PYTHON": python,
                 "MAX_JOBS": str(jobs)}
    build = mmcv_build_budget(jobs)
    return [
        Step("setup", f"venv over {python}'s torch, offline installs, mmcv CUDA ops ({jobs} jobs, ~{build} s)",
             SETUP_INSTALL_S + build, False, ["bash", str(ROOT / "tools/setup_env.sh")], setup_env),
        Step("check_env", "mmcv nms/roi_align forward+backward on CUDA vs torchvision", 15, True,
             [vpy, str(ROOT / "tools/check_env.py"), "--device", "cuda"]),
        Step("gpu_tests", "tests/test_gpu_setup.py on the GPU (ops vs CPU, Mask R-CNN iteration)", 30, True,
             [vpy, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests/test_gpu_setup.py"),
              "-k", "on_the_gpu"]),
        Step("transfer", "Mask R-CNN 1333x800 b2, UperNet 512 b2; ViT-T, Swin-F, ConvNeXt-F: s/iter, peak", 45,
             True, [vpy, str(ROOT / "benchmarks/bench_gpu_transfer.py"), "--json", str(out / "transfer.json")]),
        Step("engine", "engine vs bare timm, ViT-T/ConvNeXt-F 224 b128, fp32/bf16, fast paths: img/s, peak", 120,
             True, [vpy, str(ROOT / "benchmarks/bench_gpu_engine.py"), "--json", str(out / "engine.json")]),
        Step("input_pipeline", "img/s per worker on these CPUs; workers to feed the GPU step", 25, True,
             [vpy, str(ROOT / "benchmarks/bench_input_pipeline.py"), "--rounds", "2",
              "--json", str(out / "input_pipeline.json")]),
    ]


def probe(python: str) -> dict:
    """torch, its CUDA and the visible GPUs of ``python``, without a venv."""
    code = ("import json, sys, torch\n"
            "gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] "
            "if torch.cuda.is_available() else []\n"
            "print(json.dumps({'python': sys.version.split()[0], 'torch': torch.__version__, "
            "'cuda': torch.version.cuda, 'gpus': gpus}))")
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_inputs(out: Path, wheelhouse: Path, python: str) -> list[str]:
    """Problems that stop the run before it starts (one line each)."""
    problems = []
    rc = subprocess.run([python, str(ROOT / "tools/check_env.py"), "--torch-range", "--quiet"],
                        capture_output=True, text=True)
    if rc.returncode != 0:
        problems.append((rc.stderr.strip().splitlines() or [f"PYTHON={python}: cannot run it"])[-1]
                        .replace("[check] ERROR: ", ""))
        return problems
    if not wheelhouse.is_dir():
        problems.append(f"--wheelhouse {wheelhouse}: no such directory (make it with tools/make_wheelhouse.sh)")
        return problems
    # The same resolution the setup runs: every package PYTHON lacks has a wheel there, and the mmcv sdist.
    rc = subprocess.run([python, str(ROOT / "tools/wheelhouse.py"), "missing", str(wheelhouse)],
                        capture_output=True, text=True)
    if rc.returncode != 0:
        problems.append((rc.stderr.strip().splitlines() or ["wheelhouse check failed"])[-1]
                        .replace("[wheelhouse] ERROR: ", ""))
    if out.exists() and not out.is_dir():
        problems.append(f"OUT_DIR {out}: exists and is not a directory")
    return problems


def run_step(step: Step, out: Path, started: float) -> None:
    log = out / f"{step.name}.log"
    step.log = log.name
    left = HARD_LIMIT_S - (time.monotonic() - started)
    if left < 5:
        step.status, step.reason = "timeout", "no time left in the run"
        return
    t0 = time.monotonic()
    with open(log, "w") as f:
        f.write(f"$ {' '.join(f'{k}={shlex.quote(v)}' for k, v in step.env.items())} "
                f"{' '.join(map(shlex.quote, step.argv))}\n")
        f.flush()
        try:
            proc = subprocess.run(step.argv, cwd=ROOT, env={**os.environ, **step.env, "PYTHONUNBUFFERED": "1"},
                                  stdout=f, stderr=subprocess.STDOUT, timeout=left)
            step.status = "ok" if proc.returncode == 0 else "failed"
            step.reason = "" if proc.returncode == 0 else f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            step.status, step.reason = "timeout", f"stopped at the run's limit of {HARD_LIMIT_S} s"
    step.seconds = round(time.monotonic() - t0, 1)
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
    print(f"[gpu_check] {step.name}: {step.status} in {step.seconds:.0f} s (budget {step.budget_s} s)"
          + (f": {step.reason}; last line: {tail[0][:200]}" if step.status != "ok" else ""), flush=True)


def mmcv_build_seconds(out: Path) -> Optional[int]:
    log = out / "setup.log"
    if not log.exists():
        return None
    for line in log.read_text(errors="replace").splitlines():
        if "built " in line and " s" in line and "mmcv" in line:
            try:
                return int(line.rsplit(" in ", 1)[1].split()[0])
            except (IndexError, ValueError):
                pass
    return None


def plan_text(steps: list[Step]) -> str:
    lines = [f"{'step':<15} {'budget':>7}  gpu  what"]
    lines += [f"{s.name:<15} {s.budget_s:>6}s  {'yes' if s.needs_gpu else 'no ':<3}  {s.what}" for s in steps]
    total = sum(s.budget_s for s in steps)
    lines.append(f"{'total':<15} {total:>6}s  (target {TOTAL_BUDGET_S} s = 9 min; steps are stopped at "
                 f"{HARD_LIMIT_S} s)")
    return "\n".join(lines)


def write_reports(out: Path, report: dict, steps: list[Step]) -> None:
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    md = [f"# GPU check, {report['date']}", "",
          f"Machine: {report['machine']['gpus'] or 'no GPU'}; {report['machine']['cpus']} CPU cores; "
          f"Python {report['machine'].get('python')}, torch {report['machine'].get('torch')} "
          f"(CUDA {report['machine'].get('cuda')}). Mode: {report['mode']}.", "",
          "| step | status | seconds | budget | what |", "|---|---|---|---|---|"]
    for s in steps:
        status = s.status + (f" ({s.reason})" if s.reason else "")
        md.append(f"| {s.name} | {status} | {'' if s.seconds is None else s.seconds} | {s.budget_s} | {s.what} |")
    md.append(f"| total | {'ok' if report['ok'] else 'FAILED'} | {report['seconds']} | "
              f"{sum(s.budget_s for s in steps)} | |")
    if report.get("mmcv_build_s") is not None:
        md += ["", f"mmcv CUDA build: {report['mmcv_build_s']} s with {report['jobs']} jobs."]
    for name in ("transfer", "engine", "input_pipeline"):
        part = out / f"{name}.json"
        if part.exists():
            md += ["", f"## {name}", "", "```", json.dumps(json.loads(part.read_text()), indent=1), "```"]
    (out / "summary.md").write_text("\n".join(md) + "\n")


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="OUT_DIR: logs, gpu_check.json, summary.md, the venv")
    parser.add_argument("--dry-run", action="store_true", help="check the inputs and print the plan; no GPU needed")
    parser.add_argument("--wheelhouse", type=Path, default=Path(os.environ.get("DT_WHEELHOUSE", ROOT / "wheelhouse")),
                        help="from tools/make_wheelhouse.sh (default: DT_WHEELHOUSE, else <repo>/wheelhouse)")
    args = parser.parse_args(argv)
    python = os.environ.get("PYTHON", "python3")
    out, wheelhouse = args.out.resolve(), args.wheelhouse.resolve()
    jobs = int(os.environ.get("MAX_JOBS") or os.cpu_count() or 1)

    problems = check_inputs(out, wheelhouse, python)
    if problems:
        print(f"[gpu_check] ERROR: {problems[0]}", file=sys.stderr)
        return 2
    machine = {**probe(python), "cpus": os.cpu_count()}
    if not machine.get("gpus") and not args.dry_run:
        print(f"[gpu_check] ERROR: no GPU visible to torch {machine.get('torch')} ({python}): nothing to check "
              "here; --dry-run checks the inputs and prints the plan", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    steps = plan_steps(out, wheelhouse, python, jobs)
    print(f"[gpu_check] {len(steps)} steps, budgets in seconds ({jobs} compile jobs):\n{plan_text(steps)}", flush=True)
    if sum(s.budget_s for s in steps) > TOTAL_BUDGET_S:
        print(f"[gpu_check] note: over the {TOTAL_BUDGET_S} s target with {jobs} compile jobs (sized for 16 cores; "
              "a cached mmcv wheel skips the build)", flush=True)

    started = time.monotonic()
    for step in steps:
        if args.dry_run:
            step.status = "skipped"
            step.reason = ("dry run" + ("; needs a GPU and none is visible" if step.needs_gpu and not machine["gpus"]
                                        else ""))
            continue
        if step.needs_gpu and any(s.status != "ok" for s in steps if s.name == "setup"):
            step.status, step.reason = "skipped", "the setup failed"
            continue
        run_step(step, out, started)
    seconds = round(time.monotonic() - started, 1)
    ok = args.dry_run or all(s.status == "ok" for s in steps)
    report = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "mode": "dry run" if args.dry_run
              else "run", "ok": ok, "seconds": seconds, "total_budget_s": TOTAL_BUDGET_S, "jobs": jobs,
              "wheelhouse": str(wheelhouse), "machine": machine, "mmcv_build_s": mmcv_build_seconds(out),
              "steps": [asdict(s) for s in steps]}
    write_reports(out, report, steps)
    verdict = "plan written" if args.dry_run else ("all checks passed" if ok else "FAILED")
    print(f"[gpu_check] {verdict} in {seconds:.0f} s: {out / 'summary.md'}, {out / 'gpu_check.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

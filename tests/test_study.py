"""The laptop study (suites/study_cpu.yaml, README "The laptop study"): its design as
pre-registered, checked against the files that carry it out, and a tiny version of the
same suite file run end to end through the runner and compare. The study itself is not
part of the tests (it takes most of an hour)."""
import csv
import math
import subprocess
import sys

import pytest
import yaml

from analysis.tables import readme_markers
from demo_data import PRETRAIN_CATEGORIES, TRANSFER_CATEGORIES, write_imagenet, write_transfer
from demo_data.everything import STUDY
from helpers import REPO
from suite import load_suite

STUDY_FILE, PILOT_FILE = REPO / "suites/study_cpu.yaml", REPO / "suites/study_cpu_pilot.yaml"


def flag(argv, name, cast=float):
    """The last value given to ``name`` in a job's command line (the preset's when absent)."""
    values = [argv[i + 1] for i, a in enumerate(argv) if a == name]
    return cast(values[-1]) if values else None


@pytest.fixture(scope="module")
def study():
    return load_suite(STUDY_FILE)


@pytest.fixture(scope="module")
def preset():
    return yaml.safe_load((REPO / "pretrain_configs/study_cpu.yaml").read_text())


def test_confirmatory_seeds_are_not_the_pilots(study):
    pre = [j for j in study.jobs if j.stage == "pretrain"]
    pilot = {j.seed for j in load_suite(PILOT_FILE).jobs}
    seeds = {}
    for j in pre:
        seeds.setdefault(j.pretrain, set()).add(j.seed)
    assert set(seeds) == {"no_dropout", "early_dropout", "early_sd", "standard_dropout"}
    assert all(len(s) >= 5 for s in seeds.values()) and len(set(map(frozenset, seeds.values()))) == 1
    assert not pilot & set().union(*seeds.values())


def test_early_methods_use_the_papers_schedule_shape(study, preset):
    """Linear early decay, the cutoff (and the warm-up) at the paper's 50 of 300 epochs of the run."""
    assert preset["warmup_epochs"] / preset["epochs"] == pytest.approx(50 / 300, abs=1e-4)
    early = [j for j in study.jobs if j.stage == "pretrain" and j.pretrain.startswith("early_")]
    assert early
    for j in early:
        assert (flag(j.argv, "--drop_mode", str), flag(j.argv, "--drop_schedule", str)) == ("early", "linear")
        assert flag(j.argv, "--cutoff_epoch") / preset["epochs"] == pytest.approx(50 / 300, abs=1e-4)


def test_diagnostics_and_evaluation_sets_are_large_enough(study, preset):
    iters_per_epoch = len(PRETRAIN_CATEGORIES) * STUDY["train_per_class"] // preset["batch_size"]
    total = iters_per_epoch * preset["epochs"]
    for j in (j for j in study.jobs if j.stage == "pretrain"):
        every, until = flag(j.argv, "--diag_every", int), flag(j.argv, "--diag_until_epoch")
        assert flag(j.argv, "--diag_batches", int) >= 16 and flag(j.argv, "--diag_samples", int) >= 512
        first_third = [s for s in range(0, total + 1, every) if s <= min(until * iters_per_epoch, total / 3)]
        assert len(first_third) >= 10, (every, until)
    # binomial SE at the worst case (50 %) under half a point, for validation and transfer test
    for n in (len(PRETRAIN_CATEGORIES) * STUDY["val_per_class"],
              len(TRANSFER_CATEGORIES) * STUDY["transfer_test_per_class"]):
        assert 100 * math.sqrt(0.25 / n) < 0.5, n


def test_transfer_starts_from_every_pretraining_seed(study):
    pre = {j.key for j in study.jobs if j.stage == "pretrain"}
    cls = [j for j in study.jobs if j.stage == "cls"]
    assert {j.depends_on for j in cls} == pre
    assert len(cls) == 2 * len(pre) and {j.task for j in cls} == {"finetune/transfer", "linear_probe/transfer"}


def test_pretrain_seed_all_list_and_mistakes(tmp_path):
    base = STUDY_FILE.read_text()
    path = tmp_path / "s.yaml"
    path.write_text(base.replace("pretrain_seed: all", "pretrain_seed: [1, 3]"))
    keys = [j.key for j in load_suite(path).jobs if j.stage == "cls"]
    assert "cls/finetune/transfer/early_sd/pretrain_seed3/seed0" in keys and len(keys) == 2 * 4 * 2
    path.write_text(base.replace("pretrain_seed: all", "pretrain_seed: 2"))
    keys = [j.key for j in load_suite(path).jobs if j.stage == "cls"]
    assert "cls/finetune/transfer/early_sd/seed0" in keys and len(keys) == 2 * 4  # one seed: the old keys
    for value, message in (("[1, 9]", "seed 9 is not among pretrain.seeds [0, 1, 2, 3, 4] (give one of them, a "
                                      "list of them, or all)"),
                           ("every", "expected a seed of pretrain.seeds, a list of them, or all, not 'every'")):
        path.write_text(base.replace("pretrain_seed: all", f"pretrain_seed: {value}"))
        done = subprocess.run([sys.executable, "-m", "suite", "run", str(path), "--dry_run"], cwd=REPO,
                              capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.strip() == (
            f"error: suite file {path}: cls.pretrain_seed: {message}"), done.stderr


# ---- the same suite file, tiny -----------------------------------------------------------------

TINY = ["--epochs", "2", "--batch_size", "8", "--num_workers", "0", "--tensorboard", "false", "--print_freq", "0",
        "--eval_every", "1", "--ckpt_every_iters", "0"]


def tiny_study(tmp_path):
    """suites/study_cpu.yaml with its data, output root and run length replaced: two of its
    methods, 2 seeds, 2 epochs of 96 images at the study's input size."""
    data = tmp_path / "data"
    write_imagenet(data / "imagenet", train_per_class=8, val_per_class=2, size=STUDY["size"], seed=5)
    write_transfer(data / "transfer", train_per_class=4, test_per_class=2, size=STUDY["size"], seed=6)
    spec = yaml.safe_load(STUDY_FILE.read_text())
    spec["output_root"] = str(tmp_path / "out")
    for arch, runs in spec["pretrain"]["architectures"].items():  # the baseline and early dropout
        spec["pretrain"]["architectures"][arch] = [r for r in runs if r["name"] in ("no_dropout", "early_dropout")]
    spec["pretrain"].update(seeds=[0, 1], data=str(data / "imagenet"),
                            flags=spec["pretrain"]["flags"] + TINY + ["--diag_every", "2", "--diag_until_epoch", "1",
                                                                      "--diag_batches", "2", "--diag_samples", "16"])
    spec["cls"].update(data=str(data / "transfer"), flags=TINY + ["--warmup_epochs", "0"])
    path = tmp_path / "study_tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_a_tiny_study_runs_and_compare_answers_every_claim(tmp_path):
    path = tiny_study(tmp_path)
    run = subprocess.run([sys.executable, "-m", "suite", "run", str(path), "--jobs", "2"], cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0 and run.stdout.splitlines()[-1] == "12 jobs: 12 done", run.stdout[-3000:] + run.stderr
    out, readme = tmp_path / "report", tmp_path / "README.md"
    begin, end = readme_markers(out)
    readme.write_text(f"# Study\n\n{begin}\nold numbers\n{end}\n\nafter\n")
    done = subprocess.run([sys.executable, "tools/compare.py", str(path), "--out", str(out), "--metric", "all",
                           "--readme", str(readme)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    pre = {(r["method"], r["metric"]) for r in rows if r["task"] == "pretraining"}
    for metric in ("train_loss", "top1", "loss_gap", "gdv", "gde", "grad_norm", "model_distance"):
        assert {m for m, k in pre if k == metric} >= {"no dropout", "early-linear dropout 0.2 until epoch 0.6667"}
    # transfer: both recipes, every method, two (pretraining seed, transfer seed) pairs each
    transfer = [r for r in rows if r["task"] == "classification" and r["metric"] == "top1" and r["n_pairs"]]
    assert {r["recipe"].split(",")[0] for r in transfer} == {"finetune", "linear_probe"}
    assert {r["n_pairs"] for r in transfer} == {"2"} and len(transfer) == 2
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert sorted(r["pretrain_seed"] for r in runs if r["task"] == "classification") == ["0"] * 4 + ["1"] * 4
    report = (out / "report.md").read_text()
    assert f"Made by `python tools/compare.py {path} --out {out} --metric all --readme {readme}` at commit " in report
    assert "its 12 runs were made at commit " in report
    figures = [p.name for p in out.glob("diagnostics_*.png")]
    assert figures
    # README's block: the same provenance, tables and figures, the text around it kept
    text = readme.read_text()
    block = text.split(begin + "\n", 1)[1].split(end, 1)[0]
    assert text.startswith("# Study\n\n") and text.endswith(f"{end}\n\nafter\n") and "old numbers" not in text
    assert block.startswith("Made by `python tools/compare.py ") and "| early-linear dropout 0.2" in block
    assert all(f"](report/{name})" in block for name in figures)


def test_readme_without_its_block_is_one_line(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n")
    done = subprocess.run([sys.executable, "tools/compare.py", str(tmp_path), "--out", "docs/x", "--readme",
                           str(readme)], cwd=REPO, capture_output=True, text=True, timeout=120)
    begin, end = readme_markers("docs/x")
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: --readme {readme}: expected one block between the lines {begin!r} and {end!r} (add them where "
        "the tables go)"), done.stderr
    assert readme.read_text() == "# no block\n"

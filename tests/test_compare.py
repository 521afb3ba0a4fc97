"""tools/compare.py: cells, pairing and statistics against numbers computed here
independently, on records written through the records module (known numbers; a
missing baseline, a crashed run, a stale run, uneven seeds, a det run whose
evaluator returned nothing) and on tiny real runs; outputs and bad input."""
import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import yaml

import records
from backbones.checkpoint import file_sha256
from compare import main as compare_main
from helpers import REPO, TINY, assert_fails_with, assert_plotted, run_ok

BASE, EARLY = "no dropout", "early-linear dropout 0.1 until epoch 50"
EARLY_SD = "early-linear drop_path 0.1 until epoch 50"
# Student t 97.5% quantiles (from a t table), for the CIs computed here.
T975 = {1: 12.706204736174704, 2: 4.302652729911275}


# ---- records with known numbers, written through the records module --------------------------

def pretrain_run(root, arch, method, seed, top1=None, loss=None, paper=None):
    d = root / "pretrain" / f"{arch}_{method.split()[0]}" / f"seed{seed}"
    d.mkdir(parents=True)
    (d / records.CONFIG).write_text(yaml.safe_dump({
        "model": arch, "epochs": 300, "lr": 0.004, "mixup": 0.8, "seed": seed, "output_dir": str(d),
        "dropout": 0.1 if "dropout 0.1" in method else 0.0, "drop_mode": method.split("-")[0]}))
    records.write_run_info(d, {"kind": "pretrain", "model": arch, "method": method, "data_path": "/data/imagenet",
                               "paper_top1": paper, "iters_per_epoch": 4})
    for epoch in range(3):
        records.append_jsonl(d / records.EPOCH_LOG, {"epoch": epoch, "train_loss": 4.0 - epoch + seed / 10,
                                                     "val_top1": 10.0 * epoch + seed})
    rate = 0.1 if "dropout 0.1" in method else 0.0
    for step in range(12):
        records.append_jsonl(d / records.ITER_LOG, {"step": step, "loss": 1.0, "dropout": rate * (step < 6),
                                                    "drop_path": 0.0})
    if top1 is not None:
        records.write_final_metrics(d, {"kind": "pretrain", "model": arch, "method": method, "epochs": 300,
                                        "final": {"top1": top1, "top5": 90.0, "loss": 1.0, "n": 50000},
                                        "train_loss_last_epoch": loss})
    return d


def provenance(ckpt, method, pre_seed):
    return {"path": str(ckpt), "sha256": file_sha256(ckpt),
            "pretrain": {"arch": "vit_tiny", "method": method, "epochs": 300, "seed": pre_seed, "input_size": 224}}


def cls_run(root, ckpt, method, pre_seed, seed, top1):
    d = root / "cls" / "finetune" / "cifar100" / f"{ckpt.stem}" / f"seed{seed}"
    d.mkdir(parents=True)
    (d / records.CONFIG).write_text(yaml.safe_dump({"epochs": 100, "lr": 5e-4, "seed": seed, "dataset": "cifar100",
                                                    "finetune": str(ckpt), "drop_path": 0.1}))
    start = provenance(ckpt, method, pre_seed)
    records.write_run_info(d, {"kind": "cls_finetune", "model": "vit_tiny", "dataset": "cifar100", "mode": "finetune",
                               "method": "standard-constant drop_path 0.1", "start_checkpoint": start})
    records.write_final_metrics(d, {"kind": "cls_finetune", "dataset": "cifar100", "mode": "finetune",
                                    "pretrain_method": method, "pretrain_sha256": start["sha256"],
                                    "final": {"top1": top1, "top5": 95.0, "loss": 1.0, "n": 10000}})
    return d


def mm_run(root, kind, ckpt, method, seed, values):
    """A det/seg work dir as RunRecordHook leaves it; ``values`` None: the evaluator returned nothing."""
    variant = "no-dropout" if method == BASE else "early-dropout"
    config = ("det_configs/vit_tiny/mask-rcnn_vit-tiny_fpn_1x_coco.py" if kind == "mmdet" else
              "seg_configs/vit_tiny/upernet_vit-tiny_512x512_160k_ade20k.py")
    d = root / kind / f"{variant}_seed{seed}"
    d.mkdir(parents=True)
    records.write_run_info(d, {"kind": kind, "task": kind, "config": config, "backbone": "vit_tiny",
                               "start_checkpoint": provenance(ckpt, method, 0), "randomness_seed": seed,
                               "fine_tune_drop": "standard at the backbone's rates (dropout 0, drop_path 0.1)",
                               "recipe": {"train_cfg": {"max_epochs": 12}, "batch_size": 2}})
    metrics = {"metrics": values} if values else {"metrics": {}, "note": "the evaluator returned no metrics"}
    records.record_validation(d, {"epoch": 12, "iter": 100, **metrics, "finished": False})
    records.mark_finished(d, True)
    return d


PRE_TOP1 = {BASE: [73.1, 73.6, 72.9], EARLY: [73.8, 73.9, 73.7]}
PRE_LOSS = {BASE: [3.10, 3.05, 3.12], EARLY: [3.00, 2.98, 3.15]}
CLS_TOP1 = {BASE: [80.1, 79.5, 80.6], EARLY: [80.9, 80.2, 80.4]}
DET_BOX = {BASE: [0.401, 0.409], EARLY: [0.410, 0.412, 0.405]}   # 3 vs 2 seeds
SEG_MIOU = {BASE: [35.2], EARLY: [36.0]}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    for method, paper in ((BASE, 73.9), (EARLY, 74.3)):
        for seed, (top1, loss) in enumerate(zip(PRE_TOP1[method], PRE_LOSS[method])):
            pretrain_run(root, "vit_tiny", method, seed, top1, loss, paper)
    pretrain_run(root, "vit_tiny", EARLY, 3, paper=74.3)            # crashed: no metrics.json
    for seed, top1 in enumerate([70.1, 70.5]):                       # no baseline of this architecture
        pretrain_run(root, "swin_femto", EARLY_SD, seed, top1, 3.3)
    ckpts = root / "ckpts"
    ckpts.mkdir()
    base_ckpt, early_ckpt, rerun = ckpts / "base.pth", ckpts / "early.pth", ckpts / "early_rerun.pth"
    for path in (base_ckpt, early_ckpt, rerun):
        path.write_bytes(path.name.encode())
    for method, ckpt in ((BASE, base_ckpt), (EARLY, early_ckpt)):
        for seed, top1 in enumerate(CLS_TOP1[method]):
            cls_run(root, ckpt, method, 0, seed, top1)
        for seed, box in enumerate(DET_BOX[method]):
            mm_run(root, "mmdet", ckpt, method, seed, {"coco/bbox_mAP": box, "coco/segm_mAP": box - 0.03})
        for seed, miou in enumerate(SEG_MIOU[method]):
            mm_run(root, "mmseg", ckpt, method, seed, {"mIoU": miou, "mAcc": 50.0, "aAcc": 70.0})
    cls_run(root, rerun, EARLY, 0, 9, 99.0)                        # stale: its checkpoint changes below
    rerun.write_bytes(b"pretrained again")
    mm_run(root, "mmdet", early_ckpt, EARLY, 4, None)                # evaluator returned nothing
    return root


def run_compare(root, out, capsys, *flags):
    capsys.readouterr()
    assert compare_main([str(root), "--out", str(out), *map(str, flags)]) == 0
    return capsys.readouterr().out


def summary_rows(out):
    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


def row(rows, task, metric, method, arch="vit_tiny"):
    [found] = [r for r in rows if r["task"] == task and r["metric"] == metric and r["method"] == method
               and r["arch"] == arch]
    return found


def f(text):
    return float(text) if text else None


def paired_t(method, base):
    """Mean difference, 95% t-interval and two-sided paired t-test p-value computed
    here: the p-value from the closed form of Student's t CDF for 2 degrees of freedom."""
    d = np.asarray(method) - np.asarray(base)
    n = len(d)
    mean, sd = d.mean(), d.std(ddof=1)
    half = T975[n - 1] * sd / math.sqrt(n)
    p = None
    if n == 3:
        t = mean / (sd / math.sqrt(n))
        p = 1 - abs(t) / math.sqrt(2 + t * t)
    return mean, mean - half, mean + half, p


@pytest.fixture(scope="module")
def compared(synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("compared")
    assert compare_main([str(synthetic), "--out", str(out), "--metric", "all"]) == 0
    return out


def test_pretraining_cell_matches_independent_statistics(compared):
    rows = summary_rows(compared)
    early, base = row(rows, "pretraining", "top1", EARLY), row(rows, "pretraining", "top1", BASE)
    assert base["is_baseline"] == "True" and base["delta"] == ""
    assert int(early["n"]) == 3 and int(early["n_pairs"]) == 3 and early["unfinished"] == "1"
    assert f(early["mean"]) == pytest.approx(np.mean(PRE_TOP1[EARLY]), rel=1e-12)
    assert f(early["std"]) == pytest.approx(np.std(PRE_TOP1[EARLY], ddof=1), rel=1e-12)
    mean, low, high, p = paired_t(PRE_TOP1[EARLY], PRE_TOP1[BASE])
    assert (f(early["delta"]), f(early["ci_low"]), f(early["ci_high"])) == pytest.approx((mean, low, high), rel=1e-9)
    assert f(early["p_value"]) == pytest.approx(p, rel=1e-9) and early["ci_method"] == "t"
    assert f(early["wins"]) == 1.0
    assert (f(early["expected"]), f(early["expected_delta"])) == pytest.approx((74.3, 0.4))
    # The final training loss: lower is better.
    loss = row(rows, "pretraining", "train_loss", EARLY)
    mean, low, high, p = paired_t(PRE_LOSS[EARLY], PRE_LOSS[BASE])
    assert (f(loss["delta"]), f(loss["ci_low"]), f(loss["ci_high"]), f(loss["p_value"])) == \
        pytest.approx((mean, low, high, p), rel=1e-9)
    assert f(loss["wins"]) == pytest.approx(2 / 3) and loss["expected"] == ""


def test_transfer_cells_pair_by_seed_and_say_what_is_missing(compared):
    rows = summary_rows(compared)
    cls = row(rows, "classification", "top1", EARLY)
    assert int(cls["n"]) == 3 and cls["stale"] == "1"  # the stale run is counted, not averaged
    mean, low, high, p = paired_t(CLS_TOP1[EARLY], CLS_TOP1[BASE])
    assert (f(cls["delta"]), f(cls["ci_low"]), f(cls["ci_high"]), f(cls["p_value"])) == \
        pytest.approx((mean, low, high, p), rel=1e-9)
    # Detection: 3 seeds against 2, paired on seeds 0 and 1; a run without metrics counted apart.
    det = row(rows, "detection", "box_AP", EARLY)
    assert (int(det["n"]), int(det["n_baseline"]), int(det["n_pairs"])) == (3, 2, 2) and det["no_metrics"] == "1"
    assert f(det["mean"]) == pytest.approx(100 * np.mean(DET_BOX[EARLY]), rel=1e-12)
    mean, low, high, _ = paired_t(np.array(DET_BOX[EARLY][:2]) * 100, np.array(DET_BOX[BASE]) * 100)
    assert (f(det["delta"]), f(det["ci_low"]), f(det["ci_high"])) == pytest.approx((mean, low, high), rel=1e-9)
    assert det["p_value"] == "" and "uneven seeds: 3 vs 2" in det["notes"]
    mask = row(rows, "detection", "mask_AP", EARLY)
    assert f(mask["delta"]) == pytest.approx(mean, rel=1e-9)  # mask = box - 3 points in both
    seg = row(rows, "segmentation", "mIoU", EARLY)
    assert f(seg["delta"]) == pytest.approx(0.8) and seg["ci_low"] == "" and "1 pair: no CI" in seg["notes"]
    # No baseline for Swin-F: mean and std, no Δ.
    swin = row(rows, "pretraining", "top1", EARLY_SD, arch="swin_femto")
    assert swin["delta"] == "" and swin["notes"].startswith("no baseline")
    assert f(swin["std"]) == pytest.approx(np.std([70.1, 70.5], ddof=1))


def test_runs_csv_holds_every_run_with_its_raw_numbers(compared, synthetic):
    with open(compared / "runs.csv") as fh:
        runs = list(csv.DictReader(fh))
    assert len(runs) == len(list(synthetic.rglob(records.RUN_INFO)))
    status = {}
    for r in runs:
        status[r["status"]] = status.get(r["status"], 0) + 1
    assert status == {"finished": 21, "unfinished": 1, "stale": 1, "no metrics": 1}
    det = [r for r in runs if r["task"] == "detection" and r["status"] == "finished"]
    assert sorted(float(r["box_AP"]) for r in det) == pytest.approx(sorted(100 * v for vs in DET_BOX.values()
                                                                           for v in vs))


def test_console_summary_and_report(synthetic, tmp_path, capsys):
    printed = run_compare(synthetic, tmp_path, capsys)
    assert "no baseline" in printed and "uneven seeds: 3 vs 2 baseline" in printed
    assert "1 unfinished" in printed and "1 stale" in printed and "1 no metrics" in printed
    assert "24 runs: 21 finished, 1 unfinished, 1 without metrics, 1 stale, 0 unreadable" in printed
    assert "Student t-interval" in printed and "same pretraining seed" in printed
    assert "74.3 (+0.4)" in printed  # the paper's number beside the pretraining row
    # Headline metrics only by default: no AP50 rows.
    assert {r["metric"] for r in summary_rows(tmp_path)} == {"top1", "train_loss", "box_AP", "mask_AP", "mIoU"}
    report = (tmp_path / "report.md").read_text()
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert {"forest_pretraining.png", "forest_classification.png", "forest_detection.png",
            "forest_segmentation.png"} <= set(pngs)
    assert len([p for p in pngs if p.startswith("curves_")]) == 5  # one per group
    for name in pngs:
        assert f"]({name})" in report
        assert_plotted(tmp_path / name)
    tex = (tmp_path / "summary.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\pm$" in tex and r"vit\_tiny" in tex
    assert (tmp_path / "summary.md").read_text().count("### ") >= 5


def test_percentile_bootstrap_interval(synthetic, tmp_path, capsys):
    run_compare(synthetic, tmp_path, capsys, "--ci", "bootstrap", "--no_plots")
    early = row(summary_rows(tmp_path), "pretraining", "top1", EARLY)
    # With 3 pairs each resampled mean equals the smallest difference with probability 1/27 > 2.5%:
    # the percentile interval runs from the smallest to the largest difference.
    d = np.array(PRE_TOP1[EARLY]) - np.array(PRE_TOP1[BASE])
    assert (f(early["ci_low"]), f(early["ci_high"])) == pytest.approx((d.min(), d.max()), rel=1e-9)
    assert early["ci_method"] == "bootstrap" and f(early["delta"]) == pytest.approx(d.mean())


def test_a_suite_file_is_a_root(synthetic, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(synthetic.parent)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"output_root": synthetic.name, "runs": []}))
    printed = run_compare(suite, tmp_path / "out", capsys, "--metric", "mIoU", "--no_plots")
    assert "segmentation" in printed and {r["metric"] for r in summary_rows(tmp_path / "out")} == {"mIoU"}


def test_another_baseline(synthetic, tmp_path, capsys):
    run_compare(synthetic, tmp_path, capsys, "--baseline", EARLY, "--no_plots")
    base = row(summary_rows(tmp_path), "pretraining", "top1", BASE)
    mean, *_ = paired_t(PRE_TOP1[BASE], PRE_TOP1[EARLY])
    assert f(base["delta"]) == pytest.approx(mean)


def test_several_baselines_each_cell_takes_the_first_it_has(tmp_path, capsys):
    standard, late = "standard-constant drop_path 0.4", "late-constant drop_path 0.4 from epoch 50"
    for seed, (std_top1, late_top1) in enumerate([(81.5, 82.4), (81.7, 82.1)]):
        pretrain_run(tmp_path / "runs", "vit_base", standard, seed, std_top1, 2.5)
        pretrain_run(tmp_path / "runs", "vit_base", late, seed, late_top1, 2.4)
    for method, top1 in ((BASE, 73.0), (EARLY, 73.5), (standard, 72.6)):
        pretrain_run(tmp_path / "runs", "vit_tiny", method, 0, top1, 3.0)
    run_compare(tmp_path / "runs", tmp_path / "out", capsys, "--baseline", BASE, "--baseline", standard,
                "--no_plots")
    rows = summary_rows(tmp_path / "out")
    assert f(row(rows, "pretraining", "top1", late, arch="vit_base")["delta"]) == pytest.approx((0.9 + 0.4) / 2)
    assert row(rows, "pretraining", "top1", standard, arch="vit_base")["is_baseline"] == "True"
    assert f(row(rows, "pretraining", "top1", standard)["delta"]) == pytest.approx(-0.4)  # ViT-T: vs no dropout


# ---- bad input: one line, exit code 2 ----------------------------------------------------------

def fails(argv, capsys, *fragments):
    return assert_fails_with(compare_main, argv, capsys, *fragments)


def test_bad_input(synthetic, tmp_path, capsys):
    out = ["--out", tmp_path / "out"]
    fails([tmp_path / "nowhere", *out], capsys, "root", "nowhere does not exist")
    (tmp_path / "empty").mkdir()
    fails([tmp_path / "empty", *out], capsys, "no run found under", "empty")
    fails([synthetic, *out, "--baseline", "late dropout"], capsys, "--baseline 'late dropout'", "no run has",
          EARLY)
    fails([synthetic, *out, "--metric", "bleu"], capsys, "--metric bleu: unknown metric", "box_AP")
    suite = tmp_path / "suite.yaml"
    suite.write_text("runs: []\n")
    fails([suite, *out], capsys, "suite file", "output_root")
    broken = tmp_path / "broken"
    pretrain_run(broken, "vit_tiny", BASE, 0, 70.0, 3.0)
    bad = broken / "pretrain/vit_tiny_no/seed0" / records.METRICS
    bad.write_text('{"kind": "pretr')
    fails([broken, *out], capsys, str(bad), "not valid JSON")
    capsys.readouterr()
    assert compare_main([str(broken), *map(str, out), "--skip_unreadable", "--no_plots"]) == 0
    assert "1 unreadable" in capsys.readouterr().out


def test_help_explains_the_output():
    res = subprocess.run([sys.executable, str(REPO / "tools/compare.py"), "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for words in ("ROOT", "baseline", "95% confidence", "paired", "report.md", "stale", "--metric", "bootstrap"):
        assert words in res.stdout, words


# ---- tiny real runs --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_runs(tmp_path_factory, small_imagenet):
    from cls_finetune.main import main as cls_main
    from demo_data import write_transfer
    from pretrain.main import main as pretrain_main
    root = tmp_path_factory.mktemp("real")
    fast = ["--num_workers", "0", "--tensorboard", "false", "--epochs", "2", "--diag_every", "2",
            "--diag_batches", "2", "--diag_samples", "32"]
    for name, flags in (("no_dropout", ["--paper_top1", "73.9"]),
                        ("early_dropout", ["--dropout", "0.1", "--drop_mode", "early", "--drop_schedule", "linear",
                                           "--cutoff_epoch", "1", "--paper_top1", "74.3"])):
        run_ok(pretrain_main, [*TINY, *fast, *flags, "--data_path", small_imagenet,
                               "--output_dir", root / "pretrain" / name])
    data = root / "transfer"
    write_transfer(data, train_per_class=4, test_per_class=2, size=32, seed=1)
    for name in ("no_dropout", "early_dropout"):
        run_ok(cls_main, ["--config", REPO / "cls_configs/demo_cpu_linear_probe.yaml", "--num_workers", "0",
                          "--tensorboard", "false", "--data_path", data, "--input_size", "32", "--epochs", "1",
                          "--batch_size", "8", "--finetune", root / "pretrain" / name / "weights.pth",
                          "--output_dir", root / "cls" / name])
    return root


def test_compare_on_real_runs(real_runs, tmp_path, capsys):
    printed = run_compare(real_runs, tmp_path, capsys)
    rows = summary_rows(tmp_path)
    early = "early-linear dropout 0.1 until epoch 1"
    for task, sub in (("pretraining", "pretrain"), ("classification", "cls")):
        got = row(rows, task, "top1", early,
                  arch="vit_tiny(depth=2,embed_dim=96,num_heads=3,patch_size=8)")
        top1 = {n: json.loads((real_runs / sub / n / records.METRICS).read_text())["final"]["top1"]
                for n in ("no_dropout", "early_dropout")}
        assert int(got["n_pairs"]) == 1 and f(got["delta"]) == pytest.approx(top1["early_dropout"] - top1["no_dropout"])
    assert f(row(rows, "pretraining", "top1", early,
                 arch="vit_tiny(depth=2,embed_dim=96,num_heads=3,patch_size=8)")["expected_delta"]) == \
        pytest.approx(0.4)
    assert "4 runs: 4 finished" in printed
    names = {p.name for p in tmp_path.glob("*.png")}
    assert {"forest_pretraining.png", "forest_classification.png"} <= names
    assert any(n.startswith("diagnostics_") for n in names) and sum(n.startswith("curves_") for n in names) == 2

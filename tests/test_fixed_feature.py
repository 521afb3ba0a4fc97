"""The fixed-feature protocol (cls_finetune/fixed_feature.py): its penalty search
against an independent grid search written here, the fitted regression folded
into a linear head, bad grids, and the recipe end to end through the suite
runner with compare showing the dataset's metric."""
import csv
import json
import textwrap

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from cls_finetune.fixed_feature import LinearProtocol, fit_head, scorer_for, search_penalty, validation_split
from cls_finetune.main import main
from helpers import REPO, assert_fails_with
from tv_fixtures import write_pets

GRID = [float(v) for v in np.logspace(-4, 2, 13)]


def blobs(n_per_class, dim, classes, seed, spread=2.5):
    """Gaussian classes whose means differ in a few of ``dim`` dimensions, with
    features on very different scales (so standardisation matters)."""
    rng = np.random.default_rng(seed)
    means = np.zeros((classes, dim))
    means[:, :4] = rng.normal(0, 1, (classes, 4))
    y = np.repeat(np.arange(classes), n_per_class)
    x = (means[y] + rng.normal(0, spread / 2, (len(y), dim))) * np.geomspace(0.01, 100, dim)
    return x, y


def independent_search(x_fit, y_fit, x_val, y_val, grid):
    """Kornblith et al.'s selection, from scratch: standardise on the fitting set, one
    cold-started L-BFGS fit per penalty (C = 1 / (lambda n)), best validation accuracy."""
    scaler = StandardScaler().fit(x_fit)
    scores = {}
    for l2 in grid:
        model = LogisticRegression(C=1.0 / (l2 * len(x_fit)), solver="lbfgs", max_iter=5000, tol=1e-10)
        model.fit(scaler.transform(x_fit), y_fit)
        scores[l2] = 100.0 * np.mean(model.predict(scaler.transform(x_val)) == y_val)
    best = max(scores.values())
    return max(l2 for l2, s in scores.items() if s == best), scores


def test_penalty_search_recovers_an_independent_grid_search():
    x, y = blobs(30, 60, 4, seed=0, spread=1.2)
    fit, val = validation_split(y, None, fraction=0.3, seed=0)
    assert np.bincount(y[val]).tolist() == [9] * 4  # stratified
    _, score = scorer_for("cifar10", multilabel=False)
    chosen, scores = search_penalty(x[fit], y[fit], x[val], y[val], GRID, LinearProtocol(4), score)
    expected, expected_scores = independent_search(x[fit], y[fit], x[val], y[val], GRID)
    assert chosen == expected
    # the curve has an optimum inside the grid: too strong and too weak a penalty both score less
    assert expected_scores[chosen] > expected_scores[max(GRID)] and chosen != min(GRID)
    for l2 in GRID:  # warm starts reach the same optima: at most one validation image apart
        assert abs(scores[l2] - expected_scores[l2]) <= 100.0 / len(val) + 1e-9, l2


def test_the_head_is_the_regression_on_raw_features():
    for classes in (2, 5):  # scikit-learn keeps one row of weights for two classes
        x, y = blobs(30, 12, classes, seed=classes)
        w, b = fit_head(x, y, 1e-2, LinearProtocol(classes))
        scaler = StandardScaler().fit(x)
        ref = LogisticRegression(C=1.0 / (1e-2 * len(x)), solver="lbfgs", max_iter=5000, tol=1e-10)
        ref.fit(scaler.transform(x), y)
        probs = torch.softmax(torch.as_tensor(x @ w.T + b), dim=1).numpy()
        np.testing.assert_allclose(probs, ref.predict_proba(scaler.transform(x)), atol=2e-3)


def test_official_val_split_is_used_when_there_is_one():
    fit, val = validation_split(np.zeros(10), range(7, 10), fraction=0.5, seed=0)
    assert fit.tolist() == list(range(7)) and val.tolist() == [7, 8, 9]


def test_selection_metric_is_the_datasets_own():
    assert scorer_for("pets", False)[0] == "mean_per_class" and scorer_for("voc2007", True)[0] == "mAP"
    assert scorer_for("food101", False)[0] == "top1"


@pytest.mark.parametrize("argv, said", [
    (["--l2_grid"], "--l2_grid: the penalty grid is empty"),
    (["--l2_grid", "0.1", "-1"], "--l2_grid: penalties must be positive numbers, not -1.0"),
    (["--val_fraction", "1.5"], "--val_fraction 1.5 must lie in (0, 1)"),
])
def test_bad_protocol_flags_are_one_line(argv, said, tmp_path, capsys):
    assert_fails_with(main, ["--config", REPO / "cls_configs/demo_cpu_fixed_feature.yaml", "--finetune", "x.pth",
                             "--model", "vit_tiny", "--output_dir", tmp_path, *argv], capsys, said)


def test_empty_grid_in_a_config_file_is_one_line(tmp_path, capsys):
    config = tmp_path / "grid.yaml"
    config.write_text("l2_grid: []\n")
    assert_fails_with(main, ["--config", REPO / "cls_configs/demo_cpu_fixed_feature.yaml", config, "--finetune",
                             "x.pth", "--model", "vit_tiny", "--output_dir", tmp_path], capsys,
                      "--l2_grid: the penalty grid is empty")


TINY_PRETRAIN = ["--model_kwargs", "{depth: 2, patch_size: 8, embed_dim: 96, num_heads: 3}", "--input_size", "64",
                 "--epochs", "1", "--batch_size", "16", "--num_workers", "0", "--tensorboard", "false",
                 "--print_freq", "0"]


def test_fixed_feature_recipe_through_the_suite_runner_and_compare(tmp_path, capsys):
    from compare import main as compare_main
    from demo_data import write_imagenet
    from suite.__main__ import main as suite_main
    write_imagenet(tmp_path / "imagenet", train_per_class=4, val_per_class=1, size=64, seed=3)
    info = write_pets(tmp_path / "pets", num_classes=3, train_per_class=10, test_per_class=4, size=64, seed=0)
    suite = tmp_path / "suite.yaml"
    suite.write_text(textwrap.dedent(f"""\
        output_root: {tmp_path / 'out'}
        resources: {{cpus_per_task: 1, time: 15}}
        pretrain:
          architectures:
            tiny:
              - {{name: a, preset: demo_cpu}}
              - {{name: b, preset: demo_cpu, flags: [--dropout, 0.1, --drop_mode, early, --cutoff_epoch, 1]}}
          data: {tmp_path / 'imagenet'}
          flags: {json.dumps(TINY_PRETRAIN)}
        cls:
          recipes: {{fixed_feature: cls_configs/demo_cpu_fixed_feature.yaml}}
          datasets: {{pets: cls_configs/datasets/pets.yaml}}
          data: {tmp_path / 'pets'}
          flags: [--batch_size, "8", --num_workers, "0", --tensorboard, "false", --l2_grid, "0.001", "0.1", "10"]
        """))
    assert suite_main(["run", str(suite), "--jobs", "2"]) == 0, capsys.readouterr()
    run_dir = tmp_path / "out/cls/fixed_feature/pets/b/seed0"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["mode"] == "fixed_feature" and metrics["final"]["n"] == info["test"]
    search = metrics["fixed_feature"]
    assert search["grid"] == [0.001, 0.1, 10.0] and search["l2"] in search["grid"]
    assert search["selected_by"] == "mean_per_class" and search["fit_images"] + search["val_images"] == 30
    assert 0 <= metrics["final"]["mean_per_class"] <= 100 and "top1" in metrics["final"]
    # the exported head is the fitted one: --eval of weights.pth gives the recorded test numbers
    assert main(["--config", str(REPO / "cls_configs/demo_cpu_fixed_feature.yaml"), "--dataset", "pets",
                 "--data_path", str(tmp_path / "pets"), "--finetune", str(run_dir / "weights.pth"), "--eval",
                 "--num_workers", "0", "--batch_size", "8", "--output_dir", str(tmp_path / "eval")]) == 0
    evaluated = json.loads((tmp_path / "eval/metrics_eval.json").read_text())["val"]
    assert evaluated["mean_per_class"] == pytest.approx(metrics["final"]["mean_per_class"], abs=1e-6)
    assert compare_main([str(suite), "--out", str(tmp_path / "compare")]) == 0  # with its plots, as the demo
    rows = [r for r in csv.DictReader(open(tmp_path / "compare/summary.csv")) if r["task"] == "classification"]
    assert {r["metric"] for r in rows} == {"mean_per_class"}, rows
    assert all("fixed_feature" in r["recipe"] for r in rows) and len(rows) == 2  # baseline and method


def test_multilabel_protocol_is_one_binary_regression_per_class_without_difficult_images():
    x, label = blobs(30, 12, 3, seed=4)
    y = np.eye(3)[label]
    y[::5, (label[::5] + 1) % 3] = -1  # difficult-only for another class: left out of that class's fit
    _, score = scorer_for("voc2007", multilabel=True)
    chosen, scores = search_penalty(x[::2], y[::2], x[1::2], y[1::2], GRID, LinearProtocol(3, multilabel=True),
                                    score)
    assert chosen in GRID and all(0 <= s <= 100 for s in scores.values())
    w, b = fit_head(x, y, chosen, LinearProtocol(3, multilabel=True))
    scaler = StandardScaler().fit(x)
    for k in range(3):
        keep = y[:, k] >= 0
        ref = LogisticRegression(C=1.0 / (chosen * keep.sum()), solver="lbfgs", max_iter=5000, tol=1e-10)
        ref.fit(scaler.transform(x[keep]), y[keep, k] > 0)
        sigmoid = 1 / (1 + np.exp(-(x @ w[k] + b[k])))
        np.testing.assert_allclose(sigmoid, ref.predict_proba(scaler.transform(x))[:, 1], atol=2e-3)

"""The paper's diagnostics against direct computations on a small model."""
import math

import pytest
import torch
import torch.nn as nn

from pretrain.diagnostics import (
    dataset_gradient,
    direction_error,
    direction_variance,
    flat_gradient,
    measure,
    model_distance,
)


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))


def data(n=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def grads_one_by_one(model, x, y):
    """Reference: per-parameter .grad from loss.backward(), concatenated."""
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.reshape(-1).double() for p in model.parameters()])


def cosd(a, b):
    return (1 - (a @ b).item() / (a.norm().item() * b.norm().item())) / 2


def test_flat_gradient_equals_backward():
    model = small_model().eval()
    x, y = data()
    ours = flat_gradient(model, nn.CrossEntropyLoss(), x, y)
    torch.testing.assert_close(ours, grads_one_by_one(model, x, y))


def test_direction_variance_and_error_match_pairwise_loops():
    model = small_model().eval()
    x, y = data(40)
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 40, 8)]
    grads = [grads_one_by_one(model, bx, by) for bx, by in batches]
    pairs = [cosd(grads[i], grads[j]) for i in range(5) for j in range(i + 1, 5)]
    assert direction_variance(grads) == pytest.approx(sum(pairs) / len(pairs), rel=1e-9)
    full = grads_one_by_one(model, x, y)
    assert direction_error(grads, full) == pytest.approx(sum(cosd(g, full) for g in grads) / 5, rel=1e-9)
    # Identical gradients have no variance; opposite ones have the maximum, 1.
    assert direction_variance([grads[0], grads[0]]) == pytest.approx(0, abs=1e-12)
    assert direction_variance([grads[0], -grads[0]]) == pytest.approx(1)


def test_dataset_gradient_is_the_full_batch_gradient_in_eval_mode():
    model = small_model().train()
    x, y = data(30)
    batches = [(x[:7], y[:7]), (x[7:20], y[7:20]), (x[20:], y[20:])]  # unequal sizes
    full = dataset_gradient(model, nn.CrossEntropyLoss(), batches, "cpu")
    assert model.training  # mode restored
    torch.testing.assert_close(full, grads_one_by_one(model.eval(), x, y))


def test_model_distance():
    model = small_model()
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    with torch.no_grad():
        model[0].weight.add_(0.5)  # 48 entries moved by 0.5
    assert model_distance(model, initial) == pytest.approx(math.sqrt(48 * 0.25))


def test_measure_uses_dropout_and_leaves_training_rng_alone():
    model = small_model()
    x, y = data(32)
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    torch.manual_seed(123)
    before = torch.get_rng_state()
    m = measure(model, nn.CrossEntropyLoss(), batches, batches, "cpu", initial=initial, seed=7)
    assert torch.equal(before, torch.get_rng_state())
    assert m["model_distance"] == 0.0 and 0 < m["gdv"] < 1 and 0 < m["gde"] < 1 and m["grad_norm"] > 0
    # With dropout off, train-mode gradients equal eval-mode ones: GDE of the full batch is ~0.
    model[2].p = 0.0
    m0 = measure(model, nn.CrossEntropyLoss(), [(x, y), (x, y)], batches, "cpu")
    assert m0["gde"] == pytest.approx(0, abs=1e-12) and m0["gdv"] == pytest.approx(0, abs=1e-12)


def test_measure_agrees_with_the_separate_measures():
    # measure() takes GDV, GDE and the norms from one Gram matrix; the same gradients (same
    # seed, same order of passes) through the separate functions must give the same numbers.
    model = small_model()
    x, y = data(32)
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]
    m = measure(model, nn.CrossEntropyLoss(), batches, batches[:2], "cpu", seed=3)
    torch.manual_seed(3)
    model.train()
    grads = [flat_gradient(model, nn.CrossEntropyLoss(), xb, yb) for xb, yb in batches]
    full = dataset_gradient(model, nn.CrossEntropyLoss(), batches[:2], "cpu")
    assert m["gdv"] == pytest.approx(direction_variance(grads), rel=1e-9)
    assert m["gde"] == pytest.approx(direction_error(grads, full), rel=1e-9)
    assert m["grad_norm"] == pytest.approx(sum(float(g.norm()) for g in grads) / len(grads), rel=1e-9)


def test_dataset_gradient_into_a_used_buffer_with_an_unreached_parameter():
    # ``out`` may hold anything (measure reuses a matrix row); a parameter the loss never
    # reaches has a zero gradient; no batches, or fewer than two compared ones, is an error.
    model = small_model()
    model.unused = nn.Parameter(torch.ones(5))  # a parameter of the model that forward never uses
    x, y = data(16)
    batches = [(x[:8], y[:8]), (x[8:], y[8:])]
    expected = dataset_gradient(model, nn.CrossEntropyLoss(), batches, "cpu")
    params = list(model.parameters())
    start = sum(p.numel() for p in params[:next(i for i, p in enumerate(params) if p is model.unused)])
    assert len(expected) == sum(p.numel() for p in params)
    assert torch.count_nonzero(expected[start:start + 5]) == 0 and torch.count_nonzero(expected) > 0
    out = torch.full_like(expected, 7.0)
    assert torch.equal(dataset_gradient(model, nn.CrossEntropyLoss(), batches, "cpu", out=out), expected)
    with pytest.raises(ValueError, match="at least one sample"):
        dataset_gradient(model, nn.CrossEntropyLoss(), [], "cpu")
    with pytest.raises(ValueError, match="at least two mini-batches"):
        measure(model, nn.CrossEntropyLoss(), batches[:1], batches, "cpu")


def test_training_with_diagnostics_logs_them_without_changing_training(tmp_path):
    import json
    import subprocess
    import sys

    from demo_data import write_imagenet
    from helpers import REPO, TINY, assert_plotted, read_jsonl
    from pretrain.main import main

    data = tmp_path / "data"
    write_imagenet(data, train_per_class=8, val_per_class=2, size=32, seed=4)
    common = [*TINY, "--data_path", data, "--epochs", "2", "--dropout", "0.2", "--drop_mode", "early",
              "--cutoff_epoch", "1"]
    assert main([str(a) for a in [*common, "--output_dir", tmp_path / "plain"]]) == 0
    out = tmp_path / "diag"
    assert main([str(a) for a in [*common, "--output_dir", out, "--diag_every", "3",
                                  "--diag_batches", "3", "--diag_samples", "32"]]) == 0
    assert [r["loss"] for r in read_jsonl(out / "log_iter.jsonl")] == \
           [r["loss"] for r in read_jsonl(tmp_path / "plain/log_iter.jsonl")]
    recs = read_jsonl(out / "diagnostics.jsonl")
    assert [r["step"] for r in recs] == [0, 3, 6, 9, 12]
    assert recs[0]["model_distance"] == 0.0 and recs[-1]["model_distance"] > recs[1]["model_distance"] > 0
    assert [r["dropout"] for r in recs] == [0.2, 0.2, 0.0, 0.0, 0.0]  # early, cutoff at update 6
    assert all(0 < r["gdv"] < 1 and 0 <= r["gde"] < 1 for r in recs)

    repo = REPO
    tool = [sys.executable, str(repo / "tools/analyze_gradients.py")]
    res = subprocess.run([*tool, "plot", str(out), str(out), "--out", str(tmp_path / "d.png")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert_plotted(tmp_path / "d.png")
    # Measuring the final checkpoint offline gives the last logged values.
    res = subprocess.run([*tool, "measure", str(out / "checkpoint-last.pth"), "--batches", "3", "--samples",
                          "32", "--num_workers", "0", "--out", str(tmp_path / "m.json")],
                         capture_output=True, text=True, cwd=repo)
    assert res.returncode == 0, res.stderr
    offline = json.loads((tmp_path / "m.json").read_text())[0]
    assert offline["step"] == 12
    for key in ("grad_norm", "model_distance", "gdv", "gde"):
        assert offline[key] == pytest.approx(recs[-1][key], rel=1e-6), key
    # One mini-batch cannot give a direction variance: one line, exit 2, before any work.
    res = subprocess.run([*tool, "measure", str(out / "checkpoint-last.pth"), "--batches", "1"],
                         capture_output=True, text=True, cwd=repo)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "--batches 1" in res.stderr

"""The GPU fast paths' semantics on the CPU (--fused_adamw, --channels_last,
--compile) and the engine's one host read per update. Their speed is measured
in benchmarks/bench_fast_paths.py, on a GPU only."""
import math

import pytest
import torch
import torch.nn as nn

import training.run
from backbones import DropPlan, DropSites, create_model_with_drop
from helpers import TINY, assert_fails_with, read_jsonl, run_ok
from pretrain.main import main as pretrain_main
from training.engine import NonFiniteLossError, Trainer
from training.fast_paths import ADAMW_CHOICES, adamw, adamw_kwargs, compile_model, to_channels_last
from training.logger import RunLogger
from training.schedules import CosineSchedule

CPU = torch.device("cpu")


def tiny_vit(**rates):
    return create_model_with_drop("vit_tiny", img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2,
                                  num_classes=4, **rates)


def test_adamw_choices():
    assert adamw_kwargs("off", CPU) == {}  # torch's default: the paper's runs
    assert adamw_kwargs("auto", CPU) == {"foreach": True}
    assert adamw_kwargs("auto", torch.device("cuda")) == {"fused": True}
    assert adamw_kwargs("on", CPU) == {"fused": True}
    assert adamw_kwargs("foreach", CPU) == {"foreach": True}
    with pytest.raises(ValueError, match="--fused_adamw 'fast'"):
        adamw_kwargs("fast", CPU)


@pytest.mark.parametrize("choice", [c for c in ADAMW_CHOICES if c != "off"])
def test_every_adamw_implementation_makes_the_same_updates(choice):
    torch.manual_seed(0)
    ref, other = tiny_vit(), tiny_vit()
    other.load_state_dict(ref.state_dict())
    start = ref.head.weight.detach().clone()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4,))
    opts = [adamw(m.parameters(), 1e-2, (0.9, 0.999), c, CPU) for m, c in ((ref, "off"), (other, choice))]
    assert opts[1].defaults.get("fused") or opts[1].defaults.get("foreach")
    losses = {0: [], 1: []}
    for step in range(3):
        for i, (model, opt) in enumerate(zip((ref, other), opts)):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses[i].append(loss.item())
        if step == 0:  # one update agrees to float rounding (later ones drift apart through the model)
            for a, b in zip(ref.parameters(), other.parameters()):
                assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert not torch.equal(ref.head.weight, start)  # it did train


def test_unknown_adamw_choice_is_one_line(small_imagenet, tmp_path, capsys):
    assert_fails_with(pretrain_main, [*TINY, "--data_path", small_imagenet, "--output_dir", tmp_path / "o",
                                      "--fused_adamw", "fast"], capsys, "--fused_adamw 'fast'", "off, auto, on")


def test_channels_last_changes_layout_not_results(small_imagenet, tmp_path):
    model = to_channels_last(create_model_with_drop("convnext_femto", num_classes=4))
    assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    convnext = ["--model", "convnext_femto", "--model_kwargs", "{depths: [1, 1, 1, 1], dims: [16, 32, 64, 128]}",
                "--data_path", small_imagenet, "--epochs", "1"]
    for name, extra in (("nchw", []), ("nhwc", ["--channels_last", "--fused_adamw", "on"])):
        run_ok(pretrain_main, [*TINY, *convnext, *extra, "--output_dir", tmp_path / name])
    want, got = (read_jsonl(tmp_path / n / "log_iter.jsonl") for n in ("nchw", "nhwc"))
    assert len(got) == len(want) == 6
    for g, w in zip(got, want):
        assert g["loss"] == pytest.approx(w["loss"], rel=1e-4) and g["grad_norm"] == pytest.approx(w["grad_norm"],
                                                                                                 rel=1e-3)
    config = (tmp_path / "nhwc/config.yaml").read_text()
    assert "channels_last: true" in config and "fused_adamw: 'on'" in config


def make_trainer(tmp_path, model, criterion, update_freq=1, iters=4):
    plan = DropPlan.build(epochs=1, iters_per_epoch=iters)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return Trainer(model, opt, criterion, DropSites(model), plan, CosineSchedule(1e-2, 1e-3, iters),
                   CosineSchedule(0.05, 0.05, iters), iters, update_freq, CPU,
                   RunLogger(tmp_path, tensorboard=False), print_freq=0)


def batches(n, size=8):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(size, 6, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def test_an_update_reads_the_device_once(tmp_path, monkeypatch):
    """Losses and the gradient norm come back to the host in one read per update
    (on a GPU, every read is a synchronisation); the log still holds them all."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 3))
    trainer = make_trainer(tmp_path, model, nn.CrossEntropyLoss(), update_freq=2, iters=3)
    reads, counting = [], [True]
    for name in ("item", "tolist", "__float__", "__bool__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **k):
            if counting[0]:
                reads.append(_name)
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)
    step = trainer.optimizer.step

    def uncounted_step():  # torch's AdamW reads its own step counters, which live on the host
        counting[0] = False
        step()
        counting[0] = True
    trainer.optimizer.step = uncounted_step
    trainer.train_one_epoch(batches(6), epoch=0)
    monkeypatch.undo()
    assert reads == ["tolist"] * 3
    log = read_jsonl(tmp_path / "log_iter.jsonl")
    assert len(log) == 3 and all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in log)


def test_a_non_finite_loss_stops_before_its_update(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 3))
    calls = []

    def criterion(logits, targets):  # the third micro-batch (second update, first half) goes bad
        calls.append(1)
        loss = nn.functional.cross_entropy(logits, targets)
        return loss * float("nan") if len(calls) == 3 else loss
    trainer = make_trainer(tmp_path, model, criterion, update_freq=2, iters=3)
    after_first = {}
    trainer.on_update = lambda step: after_first.update({k: v.clone() for k, v in model.state_dict().items()})
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 0, update 1: training stopped before"):
        trainer.train_one_epoch(batches(6), epoch=0)
    assert len(calls) == 4  # both micro-batches of the update ran; its step did not
    assert all(torch.equal(model.state_dict()[k], v) for k, v in after_first.items())


def test_the_logged_norm_is_the_clipping_norm_and_gradients_are_untouched(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 3))
    trainer = make_trainer(tmp_path, model, nn.CrossEntropyLoss(), iters=1)
    x, y = batches(1)[0]
    ref = nn.Sequential(nn.Linear(6, 3))
    ref.load_state_dict(model.state_dict())
    nn.functional.cross_entropy(ref(x), y).backward()
    grads = [p.grad.clone() for p in ref.parameters()]
    want = float(torch.nn.utils.clip_grad_norm_(ref.parameters(), float("inf")))
    trainer.optimizer.step = lambda: None  # keep the gradients to look at them
    trainer.optimizer.zero_grad = lambda set_to_none=True: None
    trainer.train_one_epoch([(x, y)], epoch=0)
    assert read_jsonl(tmp_path / "log_iter.jsonl")[0]["grad_norm"] == want
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


def test_compiled_drop_sites_with_a_changing_rate_never_recompile():
    """A rate that changes every update: the sites run eagerly, so the compiled
    regions are traced once and draw the same random masks as eager execution."""
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = tiny_vit(drop_path=0.3)
    sites = DropSites(model, "vit_tiny")
    compiled = compile_model(model, sites, changing_rates=True, backend="eager")
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4,))
    graphs = []
    for i in range(4):
        sites.apply(0.0, 0.3 - 0.05 * i)
        torch.manual_seed(i)
        got = nn.functional.cross_entropy(compiled(x), y)
        torch.manual_seed(i)
        want = nn.functional.cross_entropy(model(x), y)
        assert got.item() == pytest.approx(want.item(), rel=1e-6)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] > 0 and len(set(graphs)) == 1, graphs
    assert set(model.state_dict()) == set(compiled._orig_mod.state_dict())  # checkpoints keep their keys


def test_inductor_compiled_model_gives_the_eager_loss_and_gradients():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = create_model_with_drop("vit_tiny", img_size=16, patch_size=8, depth=1, embed_dim=16, num_heads=1,
                                   num_classes=3)
    compiled = compile_model(model, DropSites(model, "vit_tiny"), changing_rates=False)
    x, y = torch.randn(2, 3, 16, 16), torch.randint(0, 3, (2,))
    want = nn.functional.cross_entropy(model(x), y)
    want_grads = torch.autograd.grad(want, list(model.parameters()))
    got = nn.functional.cross_entropy(compiled(x), y)
    got_grads = torch.autograd.grad(got, list(model.parameters()))
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    for g, w in zip(got_grads, want_grads):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-6)


def test_compile_flag_reaches_the_training_step(small_imagenet, tmp_path, monkeypatch):
    """--compile wraps the model the Trainer calls (eager backend here: inductor's
    numerics are the test above); an early-linear schedule keeps the drop sites
    eager, so the run matches the uncompiled one."""
    seen = []

    def eager_compile(model, sites, changing_rates, backend="inductor"):
        seen.append(changing_rates)
        return compile_model(model, sites, changing_rates, backend="eager")
    monkeypatch.setattr(training.run, "compile_model", eager_compile)
    common = [*TINY, "--data_path", small_imagenet, "--epochs", "2", "--drop_path", "0.2", "--drop_mode", "early",
              "--drop_schedule", "linear", "--cutoff_epoch", "1"]
    run_ok(pretrain_main, [*common, "--output_dir", tmp_path / "eager"])
    run_ok(pretrain_main, [*common, "--compile", "--output_dir", tmp_path / "compiled"])
    assert seen == [True]
    want, got = (read_jsonl(tmp_path / n / "log_iter.jsonl") for n in ("eager", "compiled"))
    assert [r["drop_path"] for r in got] == [r["drop_path"] for r in want] and got[1]["drop_path"] > 0
    for g, w in zip(got, want):
        assert g["loss"] == pytest.approx(w["loss"], rel=1e-5)
    weights = torch.load(tmp_path / "compiled/weights.pth", weights_only=True)["model"]
    assert not any(k.startswith("_orig_mod") for k in weights)


class _Draws(torch.utils.data.Dataset):
    """What a transform would draw: python, numpy and torch (CPU) random numbers."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        import random

        import numpy as np
        return torch.tensor([index, random.random(), float(np.random.rand()), float(torch.rand(()))],
                            dtype=torch.float64)


def test_seeded_samples_are_the_same_in_workers_and_leave_the_main_process_rng_alone(monkeypatch):
    # Workers skip the save/restore of the RNG states (nothing else draws from them there);
    # the samples must still be the seeded ones, and the main process's states untouched,
    # the CUDA generators included (torch.manual_seed would reseed them and not restore them).
    import random

    import numpy as np

    from training.data import EpochSampler, SeededDataset

    def reseeds_cuda(seed):
        raise AssertionError("a sample's seeding reached the CUDA generators")
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeds_cuda)
    sampler = EpochSampler(8, shuffle=True, seed=3)
    dataset = SeededDataset(_Draws())
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    in_main = torch.stack([dataset[key] for key in sampler])  # (a DataLoader draws its own base seed)
    assert random.getstate() == py_state and torch.equal(torch.get_rng_state(), torch_state)
    now = np.random.get_state()
    assert (now[1] == np_state[1]).all() and now[0] == np_state[0] and now[2:] == np_state[2:]
    in_workers = torch.cat(list(torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=2)))
    assert torch.equal(in_main, in_workers)
    assert len(set(in_main[:, 1].tolist())) == 8  # every sample its own seed

"""What an epoch's end does and costs: evaluation every ``--eval_every`` epochs,
one serialization per checkpoint save point (``checkpoint-best.pth`` is the file
just written), DataLoader workers kept across epochs without losing exactness."""
import argparse
import json
import multiprocessing
import os

import pytest
import torch
import torch.nn as nn
from torch.utils.data import Dataset

import training.run
from helpers import TINY, assert_fails_with, read_jsonl, run_ok
from pretrain.main import main
from training.data import make_loaders, release_workers
from training.run import CheckpointSaver, RunContext, RunData


def test_eval_every_changes_when_top1_is_measured_not_the_training(small_imagenet, tmp_path):
    common = [*TINY, "--data_path", small_imagenet, "--epochs", "5", "--seed", "2", "--dropout", "0.1"]
    run_ok(main, [*common, "--output_dir", tmp_path / "every"])
    children = set(multiprocessing.active_children())
    # with a worker: the persistent loaders give the samples of the run without one
    run_ok(main, [*common, "--output_dir", tmp_path / "third", "--eval_every", "3", "--num_workers", "1"])
    assert set(multiprocessing.active_children()) == children  # the run ended its workers
    every, third = read_jsonl(tmp_path / "every/log.jsonl"), read_jsonl(tmp_path / "third/log.jsonl")
    assert [r["epoch"] for r in third] == list(range(5))
    assert [r["epoch"] for r in third if "val_top1" in r] == [2, 4]  # every 3rd and the last
    for a, b in zip(every, third):
        assert a["train_loss"] == b["train_loss"]
        if "val_top1" in b:
            assert (a["val_top1"], a["val_loss"]) == (b["val_top1"], b["val_loss"])
    a = torch.load(tmp_path / "every/weights.pth", weights_only=True)["model"]
    b = torch.load(tmp_path / "third/weights.pth", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    m_every = json.loads((tmp_path / "every/metrics.json").read_text())
    m_third = json.loads((tmp_path / "third/metrics.json").read_text())
    assert (m_every["eval_every"], m_every["evaluated_epochs"]) == (1, 5)
    assert (m_third["eval_every"], m_third["evaluated_epochs"]) == (3, 2)
    assert m_third["final"] == m_every["final"]
    assert m_third["best_top1"] == max(r["val_top1"] for r in third if "val_top1" in r)
    best = torch.load(tmp_path / "third/checkpoint-best.pth", weights_only=True)
    assert best["next_step"] in (3 * 6, 5 * 6) and best["best_top1"] == m_third["best_top1"]


def test_eval_every_must_be_positive(small_imagenet, tmp_path, capsys):
    assert_fails_with(main, [*TINY, "--data_path", small_imagenet, "--output_dir", tmp_path, "--eval_every", "0"],
                      capsys, "--eval_every 0", "at least 1")


def saver_for(tmp_path, ckpt_every_iters=0):
    model = nn.Linear(4, 3)
    args = argparse.Namespace(ckpt_every_iters=ckpt_every_iters, eval_every=2, epochs=8)
    data = RunData(model, ["a", "b", "c"], train_set=[], train_loader=None, train_sampler=None, val_loader=None,
                   description="test")
    ctx = RunContext(args, "pretrain", torch.device("cpu"), tmp_path, data, plan=None, sites=None, iters_per_epoch=5)
    ctx.optimizer = torch.optim.AdamW(model.parameters())
    return CheckpointSaver(ctx)


@pytest.fixture
def counted(monkeypatch):
    """How often a save serializes and gathers the RNG states."""
    calls = {"save": 0, "rng": 0}

    def count(name, fn):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapper
    monkeypatch.setattr(training.run, "atomic_save", count("save", training.run.atomic_save))
    monkeypatch.setattr(training.run, "gather_rng_states", count("rng", training.run.gather_rng_states))
    return calls


def test_a_new_best_is_the_checkpoint_just_written_not_a_second_serialization(tmp_path, counted):
    saver = saver_for(tmp_path)
    last, best = tmp_path / "checkpoint-last.pth", tmp_path / "checkpoint-best.pth"
    saver.end_of_epoch(10, top1=50.0)
    assert counted == {"save": 1, "rng": 1}
    assert os.path.samefile(last, best)
    saver.end_of_epoch(20, top1=40.0)  # not a new best: last moves on, best keeps epoch 2
    assert counted == {"save": 2, "rng": 2}
    assert not os.path.samefile(last, best)
    assert torch.load(best, weights_only=True)["next_step"] == 10
    assert torch.load(last, weights_only=True)["next_step"] == 20
    saver.end_of_epoch(30, top1=60.0)
    assert counted == {"save": 3, "rng": 3} and os.path.samefile(last, best)
    assert torch.load(best, weights_only=True)["best_top1"] == 60.0


def test_without_hard_links_best_is_a_copy(tmp_path, counted, monkeypatch):
    def no_links(*a):
        raise OSError("hard links not supported")
    monkeypatch.setattr(os, "link", no_links)
    saver_for(tmp_path).end_of_epoch(10, top1=50.0)
    last, best = tmp_path / "checkpoint-last.pth", tmp_path / "checkpoint-best.pth"
    assert counted["save"] == 1 and not os.path.samefile(last, best)
    assert best.read_bytes() == last.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-best.pth", "checkpoint-last.pth"]


@pytest.mark.parametrize("every, saved", [(0, [5, 10, 15, 20]), (10, [10, 20])])
def test_an_epoch_without_evaluation_saves_only_on_the_checkpoint_cadence(tmp_path, counted, every, saved):
    saver = saver_for(tmp_path, ckpt_every_iters=every)
    got = []
    for next_step in (5, 10, 15, 20):  # epochs of 5 updates, none evaluated
        before = counted["save"]
        saver.end_of_epoch(next_step, top1=None)
        if counted["save"] > before:
            got.append(torch.load(tmp_path / "checkpoint-last.pth", weights_only=True)["next_step"])
    assert got == saved
    assert not (tmp_path / "checkpoint-best.pth").exists()


class WorkerDraws(Dataset):
    """A random draw under the sample's seed, and the process that made it."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        return torch.rand(()), os.getpid()


def epoch_of(loader, sampler, epoch, start=0):
    sampler.set_epoch(epoch, start=start)
    return [(x.tolist(), pid.tolist()) for x, pid in loader]


def test_persistent_workers_serve_every_epoch_with_the_samples_of_fresh_ones():
    args = argparse.Namespace(seed=3, num_workers=2, batch_size=4)
    train, sampler, val = make_loaders(args, WorkerDraws(), WorkerDraws())
    fresh_train, fresh_sampler, _ = make_loaders(argparse.Namespace(seed=3, num_workers=0, batch_size=4),
                                                 WorkerDraws(), WorkerDraws())
    try:
        epochs = [epoch_of(train, sampler, 0), epoch_of(train, sampler, 1)]
        list(val)
        resumed = epoch_of(train, sampler, 1, start=4)  # a mid-epoch resume's offset still applies
        pids = [{p for _, batch in e for p in batch} for e in epochs]
        assert pids[0] == pids[1] and os.getpid() not in pids[0]  # the same two workers both epochs
        assert len(pids[0]) == 2
        values = [[v for batch, _ in e for v in batch] for e in (*epochs, resumed)]
        assert values[0] == [v for batch, _ in epoch_of(fresh_train, fresh_sampler, 0) for v in batch]
        assert values[1] == [v for batch, _ in epoch_of(fresh_train, fresh_sampler, 1) for v in batch]
        assert values[2] == values[1][4:] and values[0] != values[1]
        workers = {c for c in multiprocessing.active_children() if c.pid in pids[0]}
        assert len(workers) == 2
    finally:
        release_workers(train, val)
    assert not workers & set(multiprocessing.active_children())

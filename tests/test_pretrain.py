"""Pretraining end to end on generated ImageNet-style folders, on the CPU."""
import json
import os
import subprocess

import pytest
import torch

import helpers
from helpers import REPO, TINY, free_port, read_jsonl, start_and_kill
from pretrain.main import main


def run(argv):
    assert main([str(a) for a in argv]) == 0


def test_learns_the_generated_classes(learned_pretraining):
    out = learned_pretraining  # conftest.py: 12 epochs of a 4-block ViT at 64x64, 100 images per class
    epochs = read_jsonl(out / "log.jsonl")
    assert len(epochs) == 12
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 0.5
    chance = 100 / 12
    assert epochs[-1]["val_top1"] > 2.5 * chance, epochs[-1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"]["top1"] == pytest.approx(epochs[-1]["val_top1"])
    # The record a downstream run reads.
    for name in ("config.yaml", "run.json", "log_iter.jsonl", "checkpoint-last.pth",
                 "checkpoint-best.pth", "weights.pth"):
        assert (out / name).is_file(), name
    exported = torch.load(out / "weights.pth", weights_only=True)
    assert exported["meta"]["arch"] == "vit_tiny" and exported["meta"]["method"] == "no dropout"


def test_early_dropout_run_differs_from_baseline_only_in_dropout(small_imagenet, tmp_path):
    common = [*TINY, "--data_path", small_imagenet, "--epochs", "3", "--seed", "3"]
    run([*common, "--output_dir", tmp_path / "base"])
    run([*common, "--output_dir", tmp_path / "early", "--dropout", "0.2", "--drop_mode", "early",
         "--drop_schedule", "linear", "--cutoff_epoch", "2"])
    base, early = read_jsonl(tmp_path / "base/log_iter.jsonl"), read_jsonl(tmp_path / "early/log_iter.jsonl")
    ipe = 6  # 96 images / 16
    assert len(base) == len(early) == 3 * ipe
    for b, e in zip(base, early):
        keys = ("step", "epoch", "lr", "weight_decay")
        assert [b[k] for k in keys] == [e[k] for k in keys]
        assert b["dropout"] == 0.0 and b["drop_path"] == e["drop_path"] == 0.0
    n = 2 * ipe
    for r in early:  # read back off the model: linspace(0.2, 0, n) before the cutoff, 0 after
        expected = 0.2 * (1 - r["step"] / (n - 1)) if r["step"] < n else 0.0
        assert r["dropout"] == pytest.approx(expected, abs=1e-9)
    # With dropout on, the losses differ; with it off from the start they would not.
    assert base[0]["loss"] != early[0]["loss"]


def test_killed_mid_epoch_run_resumes_exactly(small_imagenet, tmp_path):
    common = [*TINY, "--data_path", small_imagenet, "--epochs", "3", "--seed", "5",
              "--drop_path", "0.2", "--drop_mode", "late", "--cutoff_epoch", "1",
              "--num_workers", "1", "--ckpt_every_iters", "4", "--model_ema", "true",
              "--model_ema_decay", "0.9"]
    ref = tmp_path / "ref"
    run([*common, "--output_dir", ref])

    out = tmp_path / "killed"

    def past_mid_epoch_checkpoint() -> bool:  # update 8, inside epoch 1, and training went past it
        ckpt = out / "checkpoint-last.pth"
        return ((out / "log_iter.jsonl").is_file() and len(read_jsonl(out / "log_iter.jsonl")) >= 10
                and ckpt.is_file() and torch.load(ckpt, weights_only=True)["next_step"] == 8)

    start_and_kill("pretrain", [*common, "--output_dir", out], past_mid_epoch_checkpoint)
    assert not (out / "metrics.json").exists()

    run([*common, "--output_dir", out, "--resume", "auto"])
    got, want = read_jsonl(out / "log_iter.jsonl"), read_jsonl(ref / "log_iter.jsonl")
    assert [r["step"] for r in got] == list(range(18))
    for g, w in zip(got, want):
        assert (g["lr"], g["dropout"], g["drop_path"]) == (w["lr"], w["dropout"], w["drop_path"])
        assert g["loss"] == w["loss"], g["step"]
    a = torch.load(out / "weights.pth", weights_only=True)["model"]
    b = torch.load(ref / "weights.pth", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ea = torch.load(out / "weights_ema.pth", weights_only=True)["model"]
    eb = torch.load(ref / "weights_ema.pth", weights_only=True)["model"]
    assert all(torch.equal(ea[k], eb[k]) for k in ea)


def test_eval_of_exported_weights_reproduces_final_accuracy(small_imagenet, tmp_path):
    out = tmp_path / "run"
    run([*TINY, "--data_path", small_imagenet, "--epochs", "1", "--output_dir", out])
    final = json.loads((out / "metrics.json").read_text())["final"]["top1"]
    run([*TINY, "--data_path", small_imagenet, "--epochs", "1", "--output_dir", tmp_path / "ev",
         "--finetune", out / "weights.pth", "--eval"])
    got = json.loads((tmp_path / "ev/metrics_eval.json").read_text())
    assert got["val"]["top1"] == pytest.approx(final)
    assert len(got["weights"]["sha256"]) == 64


# ---- bad input: one clear line on stderr, exit code 2 --------------------------------


def assert_fails_with(argv, capsys, *fragments):
    return helpers.assert_fails_with(main, argv, capsys, *fragments)


def test_missing_data_path(tmp_path, capsys):
    assert_fails_with([*TINY, "--data_path", tmp_path / "nowhere", "--output_dir", tmp_path / "o"], capsys,
               "--data_path", str(tmp_path / "nowhere" / "train"))


def test_class_folder_without_images(small_imagenet, tmp_path, capsys):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(small_imagenet, data)
    empty = data / "train" / "n99999999"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert_fails_with([*TINY, "--data_path", data, "--output_dir", tmp_path / "o"], capsys, str(empty), "no images")


@pytest.mark.parametrize("workers", ["0", "1"])
def test_corrupt_image(small_imagenet, tmp_path, capsys, workers):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(small_imagenet, data)
    victim = sorted((data / "train").rglob("*.JPEG"))[3]
    victim.write_bytes(b"\xff\xd8\xff not really a jpeg")
    assert_fails_with([*TINY, "--data_path", data, "--output_dir", tmp_path / "o", "--num_workers", workers,
                "--epochs", "1"], capsys, "corrupt or unreadable image", str(victim))


def test_unknown_model(small_imagenet, tmp_path, capsys):
    assert_fails_with([*TINY, "--model", "vit_enormous", "--data_path", small_imagenet, "--output_dir", tmp_path],
               capsys, "unknown model 'vit_enormous'")


@pytest.mark.parametrize("flags,fragment", [
    (["--dropout", "0.1", "--drop_mode", "early", "--cutoff_epoch", "9"], "cutoff_epoch=9.0 is past the end"),
    (["--dropout", "1.0"], "dropout=1.0 is outside [0, 1)"),
    (["--drop_path", "0.1", "--drop_mode", "late", "--drop_schedule", "linear"], "does not go with drop_mode='late'"),
    (["--dropout", "0.1", "--drop_path", "0.1"], "both non-zero"),
])
def test_impossible_schedule(small_imagenet, tmp_path, capsys, flags, fragment):
    assert_fails_with([*TINY, "--epochs", "2", "--data_path", small_imagenet, "--output_dir", tmp_path, *flags],
               capsys, fragment)


def test_resume_from_truncated_checkpoint(small_imagenet, tmp_path, capsys):
    out = tmp_path / "run"
    run([*TINY, "--data_path", small_imagenet, "--epochs", "1", "--output_dir", out])
    ckpt = out / "checkpoint-last.pth"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    assert_fails_with([*TINY, "--data_path", small_imagenet, "--epochs", "2", "--output_dir", out, "--resume", ckpt],
               capsys, str(ckpt), "unreadable")


def test_nan_loss_stops_before_saving_bad_weights(small_imagenet, tmp_path, capsys):
    out = tmp_path / "run"
    # An absurd learning rate blows the weights up within a few updates.
    assert_fails_with([*TINY, "--data_path", small_imagenet, "--epochs", "3", "--output_dir", out, "--lr", "1e30",
                "--warmup_epochs", "0", "--ckpt_every_iters", "1"], capsys, "training stopped")
    for ckpt in out.glob("checkpoint-*.pth"):
        weights = torch.load(ckpt, weights_only=True)["model"]
        assert all(torch.isfinite(v).all() for v in weights.values()), ckpt


def test_existing_run_is_not_overwritten(small_imagenet, tmp_path, capsys):
    out = tmp_path / "run"
    run([*TINY, "--data_path", small_imagenet, "--epochs", "1", "--output_dir", out])
    before = (out / "checkpoint-last.pth").read_bytes()
    assert_fails_with([*TINY, "--data_path", small_imagenet, "--epochs", "1", "--output_dir", out], capsys,
               "already holds a run", "--resume auto")
    assert (out / "checkpoint-last.pth").read_bytes() == before


def test_two_processes_with_torchrun_on_cpu(small_imagenet, tmp_path):
    port = free_port()
    out = tmp_path / "ddp"
    res = subprocess.run(["bash", str(REPO / "tools/pretrain.sh"), "2", *map(str, TINY), "--data_path",
                          str(small_imagenet), "--epochs", "2", "--output_dir", str(out)],
                         env={**os.environ, "PORT": str(port)}, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(read_jsonl(out / "log_iter.jsonl")) == 2 * (96 // (16 * 2))  # each process takes half
    ckpt = torch.load(out / "checkpoint-last.pth", weights_only=True)
    assert len(ckpt["rng"]) == 2 and not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert final["n"] == 48  # every validation image counted once across the two processes
    assert json.loads((out / "run.json").read_text())["world_size"] == 2


def test_slurm_variables_map_to_torchrun_ones():
    from training.distributed import env_from_slurm
    env = {"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "16"}
    env_from_slurm(env)
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"]) == ("5", "1", "16")
    env = {"SLURM_PROCID": "5", "RANK": "0"}  # torchrun inside an allocation wins
    env_from_slurm(env)
    assert env["RANK"] == "0" and "WORLD_SIZE" not in env


def test_bf16_autocast_runs_on_cpu(small_imagenet, tmp_path):
    import math
    out = tmp_path / "bf16"
    run([*TINY, "--data_path", small_imagenet, "--epochs", "1", "--output_dir", out, "--amp", "bf16"])
    assert all(math.isfinite(r["loss"]) for r in read_jsonl(out / "log_iter.jsonl"))
    assert json.loads((out / "run.json").read_text())["amp"] == "bf16"

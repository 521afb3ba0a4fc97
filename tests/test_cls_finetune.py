"""Classification transfer end to end on the CPU: fine-tuning and linear probing a
pretraining checkpoint on the generated transfer split (classes pretraining
never saw), resume, DDP and bad input (the suite runner: tests/test_suite.py)."""
import json
import os
import subprocess

import pytest
import torch

from backbones.checkpoint import file_sha256
from cls_finetune.main import main
from demo_data import TRANSFER_CATEGORIES, write_transfer
from helpers import REPO, TINY, assert_fails_with, free_port, read_jsonl, run_ok, start_and_kill
from pretrain.main import main as pretrain_main

DEMO = REPO / "cls_configs/demo_cpu.yaml"
PROBE = REPO / "cls_configs/demo_cpu_linear_probe.yaml"
FAST = ["--num_workers", "0", "--tensorboard", "false"]


@pytest.fixture(scope="module")
def transfer(tmp_path_factory):
    """The demo's transfer split at the demo's size (6 classes, 64x64)."""
    root = tmp_path_factory.mktemp("transfer")
    write_transfer(root, train_per_class=60, test_per_class=20, size=64, seed=0)
    return root


@pytest.fixture(scope="module")
def small_transfer(tmp_path_factory):
    root = tmp_path_factory.mktemp("small_transfer")
    write_transfer(root, train_per_class=8, test_per_class=2, size=64, seed=1)
    return root


@pytest.fixture(scope="module")
def weights(learned_pretraining):
    return learned_pretraining / "weights.pth"


def test_finetuning_a_pretrained_checkpoint_learns_new_classes(weights, transfer, tmp_path):
    out = tmp_path / "ft"
    # The demo preset, with a late stochastic depth during fine-tuning: the drop core drives it here too.
    run_ok(main, ["--config", DEMO, *FAST, "--data_path", transfer, "--finetune", weights, "--output_dir", out,
                  "--epochs", "10", "--drop_path", "0.2", "--drop_mode", "late", "--cutoff_epoch", "6",
                  "--model_ema", "--model_ema_decay", "0.9"])
    metrics = json.loads((out / "metrics.json").read_text())
    chance = 100 / len(TRANSFER_CATEGORIES)
    assert metrics["final"]["top1"] > 2 * chance, metrics["final"]
    assert metrics["ema_final"]["n"] == 120 and metrics["ema_final"]["top1"] > 2 * chance
    ema = torch.load(out / "weights_ema.pth", weights_only=True)
    assert ema["meta"]["ema"] and ema["meta"]["top1"] == metrics["ema_final"]["top1"]
    assert metrics["final"]["n"] == 6 * 20 and "top5" in metrics["final"]
    assert (metrics["kind"], metrics["dataset"], metrics["mode"]) == ("cls_finetune", "imagefolder", "finetune")
    assert metrics["pretrain_method"] == "no dropout" and metrics["pretrain_sha256"] == file_sha256(weights)

    record = json.loads((out / "run.json").read_text())
    assert record["start_checkpoint"]["sha256"] == file_sha256(weights)
    assert record["start_checkpoint"]["path"] == str(weights.resolve())
    assert record["start_checkpoint"]["pretrain"]["arch"] == "vit_tiny"
    assert len(record["classes"]) == 6 and record["train_images"] == 360 and record["test_images"] == 120
    assert record["method"] == "late-constant drop_path 0.2 from epoch 6"

    steps = read_jsonl(out / "log_iter.jsonl")
    ipe = 360 // 32
    assert len(steps) == 10 * ipe and len(read_jsonl(out / "log.jsonl")) == 10
    for r in steps:  # read back off the model's modules, per update
        assert r["drop_path"] == (0.2 if r["step"] >= 6 * ipe else 0.0)
    # The model was built from the checkpoint's meta, and config.yaml says so.
    config = (out / "config.yaml").read_text()
    assert "model: vit_tiny" in config and "depth: 4" in config
    exported = torch.load(out / "weights.pth", weights_only=True)
    assert exported["model"]["head.weight"].shape == (6, 96) and exported["meta"]["kind"] == "cls_finetune"


def test_linear_probe_changes_only_the_head(weights, transfer, tmp_path):
    out = tmp_path / "lp"
    run_ok(main, ["--config", PROBE, *FAST, "--data_path", transfer, "--finetune", weights, "--output_dir", out,
                  "--epochs", "3"])
    before = torch.load(weights, weights_only=True)["model"]
    after = torch.load(out / "weights.pth", weights_only=True)["model"]
    body = [k for k in after if not k.startswith("head.")]
    assert len(body) > 50 and set(body) <= set(before)
    changed = [k for k in body if not torch.equal(before[k], after[k])]
    assert not changed, changed[:5]
    # trained from a 0.01-std init, after MAE's BatchNorm without affine (its running statistics only)
    assert after["head.1.weight"].shape == (6, 96) and after["head.1.weight"].abs().max() > 0.01
    assert {k for k in after if k.startswith("head.0.")} == {"head.0.running_mean", "head.0.running_var",
                                                            "head.0.num_batches_tracked"}
    assert not torch.allclose(after["head.0.running_var"], torch.ones(96))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "linear_probe" and metrics["final"]["top1"] > 100 / 6
    # Only the head is optimised.
    opt = torch.load(out / "checkpoint-last.pth", weights_only=True)["optimizer"]
    assert sum(len(g["params"]) for g in opt["param_groups"]) == 2


@pytest.fixture(scope="module")
def convnext_weights(small_imagenet, tmp_path_factory):
    """A small ConvNeXt pretrained for two epochs with stochastic depth."""
    out = tmp_path_factory.mktemp("convnext")
    run_ok(pretrain_main, [*TINY, "--model", "convnext_femto", "--model_kwargs",
                           "{depths: [1, 1, 1, 1], dims: [16, 32, 64, 128]}", "--drop_path", "0.1",
                           "--data_path", small_imagenet, "--epochs", "2", "--output_dir", out])
    return out / "weights.pth"


def test_linear_probe_keeps_every_pretrained_convnext_weight(convnext_weights, small_transfer, tmp_path):
    """ConvNeXt's classifier is head.fc; head.norm, its final LayerNorm, is backbone
    and must arrive from the checkpoint and stay frozen."""
    out = tmp_path / "lp"
    run_ok(main, ["--config", PROBE, *FAST, "--data_path", small_transfer, "--finetune", convnext_weights,
                  "--output_dir", out, "--epochs", "1", "--batch_size", "8", "--input_size", "32"])
    before = torch.load(convnext_weights, weights_only=True)["model"]
    after = torch.load(out / "weights.pth", weights_only=True)["model"]
    body = [k for k in after if not k.startswith("head.fc.")]
    assert "head.norm.weight" in body and not torch.all(before["head.norm.weight"] == 1)  # trained, not initial
    assert [k for k in body if not torch.equal(before[k], after[k])] == []
    assert after["head.fc.1.weight"].shape == (6, 128)  # head.fc.0: the probe's BatchNorm
    record = json.loads((out / "run.json").read_text())
    assert record["start_checkpoint"]["pretrain"]["method"] == "standard-constant drop_path 0.1"


def test_eval_reproduces_the_final_accuracy(weights, small_transfer, tmp_path, capsys):
    out = tmp_path / "ft"
    common = ["--config", DEMO, *FAST, "--data_path", small_transfer, "--epochs", "1"]
    # --model as recorded: the checkpoint's model_kwargs (depth 4, patch 8) still apply.
    run_ok(main, [*common, "--model", "vit_tiny", "--finetune", weights, "--output_dir", out])
    final = json.loads((out / "metrics.json").read_text())["final"]
    run_ok(main, [*common, "--finetune", out / "weights.pth", "--eval", "--output_dir", tmp_path / "ev"])
    got = json.loads((tmp_path / "ev/metrics_eval.json").read_text())
    assert got["val"]["top1"] == pytest.approx(final["top1"]) and got["val"]["loss"] == pytest.approx(final["loss"])
    assert got["weights"]["sha256"] == file_sha256(out / "weights.pth")
    assert "eval: true" in (tmp_path / "ev/config_eval.yaml").read_text()
    # A pretraining checkpoint has a 12-class ImageNet-style head, not one for these 6 classes.
    assert_fails_with(main, [*common, "--finetune", weights, "--eval", "--output_dir", tmp_path / "ev2"], capsys,
          "--eval", str(weights), "no classifier for the 6 classes")


def test_layer_decay_scales_each_block():
    from timm import create_model

    from training.engine import param_groups
    model = create_model("vit_tiny_patch16_224", depth=3, num_classes=5)
    groups = param_groups(model, 0.05, layer_decay=0.5)
    scale = {}
    for g in groups:
        for p in g["params"]:
            scale[next(n for n, q in model.named_parameters() if q is p)] = (g["lr_scale"], g["weight_decay"])
    # 3 blocks: embeddings 0.5**4, block i 0.5**(3 - i), head and final norm 1.
    assert scale["patch_embed.proj.weight"] == (0.5 ** 4, 0.05) and scale["pos_embed"][0] == 0.5 ** 4
    assert scale["blocks.0.attn.qkv.weight"] == (0.5 ** 3, 0.05)
    assert scale["blocks.2.mlp.fc1.weight"] == (0.5, 0.05) and scale["blocks.2.norm1.weight"] == (0.5, 0.0)
    assert scale["head.weight"] == (1.0, 0.05) and scale["norm.weight"] == (1.0, 0.0)


def test_killed_run_resumes_to_the_same_weights(weights, small_transfer, tmp_path):
    common = ["--config", DEMO, *FAST, "--data_path", small_transfer, "--finetune", weights, "--epochs", "3",
              "--batch_size", "8", "--ckpt_every_iters", "4", "--drop_path", "0.1", "--drop_mode", "early",
              "--cutoff_epoch", "2", "--seed", "4"]
    ref = tmp_path / "ref"
    run_ok(main, [*common, "--output_dir", ref])
    out = tmp_path / "killed"
    # Killed once the first checkpoint (update 4, mid-epoch) is written.
    start_and_kill("cls_finetune", [*common, "--output_dir", out], (out / "checkpoint-last.pth").is_file)
    assert not (out / "metrics.json").exists()
    run_ok(main, [*common, "--output_dir", out, "--resume", "auto"])
    a = torch.load(out / "weights.pth", weights_only=True)["model"]
    b = torch.load(ref / "weights.pth", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)
    got, want = read_jsonl(out / "log_iter.jsonl"), read_jsonl(ref / "log_iter.jsonl")
    assert [(r["step"], r["loss"], r["drop_path"]) for r in got] == \
        [(r["step"], r["loss"], r["drop_path"]) for r in want]
    # The resumed run still records the pretraining checkpoint it started from.
    record = json.loads((out / "run.json").read_text())
    assert record["init"] == "resume" and record["start_checkpoint"]["sha256"] == file_sha256(weights)


def test_a_training_checkpoint_records_its_method_and_resume_keeps_to_its_weights(
        learned_pretraining, small_transfer, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--config", DEMO, *FAST, "--data_path", small_transfer, "--output_dir", out]
    start = learned_pretraining / "checkpoint-best.pth"
    run_ok(main, [*common, "--finetune", start, "--epochs", "1"])  # --model from the checkpoint's args
    pretrain = json.loads((out / "run.json").read_text())["start_checkpoint"]["pretrain"]
    assert (pretrain["kind"], pretrain["arch"], pretrain["method"]) == ("pretrain", "vit_tiny", "no dropout")
    assert pretrain["model_kwargs"]["depth"] == 4 and pretrain["next_step"] > 0
    # Resuming (here: to train longer) with other starting weights than the run's is refused.
    other = learned_pretraining / "weights.pth"
    before = (out / "checkpoint-last.pth").read_bytes()
    assert_fails_with(main, [*common, "--finetune", other, "--epochs", "1", "--resume", "auto"], capsys,
          "--resume", "started from weights with sha256", str(other), "new --output_dir")
    assert (out / "checkpoint-last.pth").read_bytes() == before


def test_linear_probe_with_two_processes(weights, small_transfer, tmp_path):
    out = tmp_path / "ddp"
    res = subprocess.run(["bash", str(REPO / "tools/cls_finetune.sh"), "2", "--config", str(PROBE), *FAST,
                          "--data_path", str(small_transfer), "--finetune", str(weights), "--epochs", "1",
                          "--batch_size", "8", "--output_dir", str(out)],
                         env={**os.environ, "PORT": str(free_port())}, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(read_jsonl(out / "log_iter.jsonl")) == 48 // (8 * 2)
    assert json.loads((out / "metrics.json").read_text())["final"]["n"] == 12  # each test image once
    assert json.loads((out / "run.json").read_text())["world_size"] == 2


# ---- bad input: one clear line on stderr, exit code 2 --------------------------------

def test_resume_with_a_different_number_of_classes(weights, small_transfer, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--config", DEMO, *FAST, "--finetune", weights, "--epochs", "1", "--output_dir", out]
    run_ok(main, [*common, "--data_path", small_transfer])
    four = tmp_path / "four"
    write_transfer(four, TRANSFER_CATEGORIES[:4], train_per_class=12, test_per_class=2, size=64, seed=1)
    before = (out / "checkpoint-last.pth").read_bytes()
    assert_fails_with(main, [*common, "--data_path", four, "--resume", "auto"], capsys,
          "--resume", "checkpoint's classifier has 6 classes", "has 4")
    assert (out / "checkpoint-last.pth").read_bytes() == before
    assert_fails_with(main, ["--config", DEMO, *FAST, "--finetune", weights, "--output_dir", tmp_path / "other",
           "--data_path", small_transfer, "--num_classes", "10"], capsys, "--num_classes 10", "has 6 classes")


def test_checkpoint_of_another_architecture(weights, small_transfer, tmp_path, capsys):
    common = ["--config", DEMO, *FAST, "--data_path", small_transfer, "--output_dir", tmp_path / "o"]
    assert_fails_with(main, [*common, "--finetune", weights, "--model", "convnext_femto"], capsys,
          str(weights), "pretrained as 'vit_tiny'", "'convnext_femto'")
    # The paper's release format carries no meta: the key check names what is missing.
    bare = tmp_path / "paper_format.pth"
    torch.save({"model": torch.load(weights, weights_only=True)["model"]}, bare)
    assert_fails_with(main, [*common, "--finetune", bare], capsys, "--model", "records no architecture")
    assert_fails_with(main, [*common, "--finetune", bare, "--model", "convnext_femto"], capsys,
          str(bare), "does not match ConvNeXt", "backbone keys missing from the file: head.norm.bias",
          "stages.0.blocks.0.conv_dw.bias")


def test_missing_checkpoint_and_data(weights, tmp_path, capsys):
    common = ["--config", DEMO, *FAST, "--output_dir", tmp_path / "o"]
    assert_fails_with(main, [*common, "--data_path", tmp_path], capsys, "--finetune")
    assert_fails_with(main, [*common, "--data_path", tmp_path, "--finetune", tmp_path / "nope.pth"], capsys,
          str(tmp_path / "nope.pth"), "does not exist")
    assert_fails_with(main, [*common, "--data_path", tmp_path / "nowhere", "--finetune", weights], capsys,
          "--data_path", str(tmp_path / "nowhere" / "train"))


def test_linear_probe_refuses_drop_rates(tmp_path, capsys):
    err = assert_fails_with(main, ["--config", PROBE, "--drop_path", "0.1", "--output_dir", tmp_path], capsys,
                            "--drop_path 0.1")
    assert err.startswith("error: --linear_probe:")
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_cached_feature_probe_trains_the_head_on_the_backbones_own_features(weights, transfer, tmp_path):
    out = tmp_path / "cached"
    run_ok(main, ["--config", PROBE, *FAST, "--data_path", transfer, "--finetune", weights, "--output_dir", out,
                  "--epochs", "3", "--probe_features", "cached"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["mode"], metrics["probe_features"]) == ("linear_probe", "cached")
    assert metrics["final"]["n"] == 120 and metrics["final"]["top1"] > 2 * 100 / 6
    record = json.loads((out / "run.json").read_text())
    assert (record["probe_features"], record["probe_bn"]) == ("cached", True)
    before = torch.load(weights, weights_only=True)["model"]
    after = torch.load(out / "weights.pth", weights_only=True)["model"]
    assert [k for k in after if not k.startswith("head.") and not torch.equal(before[k], after[k])] == []
    assert after["head.1.weight"].shape == (6, 96) and after["head.1.weight"].abs().max() > 0.01
    assert not torch.allclose(after["head.0.running_mean"], torch.zeros(96))  # normalised the cached features
    assert len(read_jsonl(out / "log_iter.jsonl")) == 3 * (360 // 32)
    # The exported classifier measured on the test images (backbone + head, as any
    # fine-tuned model) scores what the head scored on the cached features.
    run_ok(main, ["--config", PROBE, *FAST, "--data_path", transfer, "--finetune", out / "weights.pth", "--eval",
                  "--output_dir", tmp_path / "ev"])
    got = json.loads((tmp_path / "ev/metrics_eval.json").read_text())["val"]
    assert got["top1"] == pytest.approx(metrics["final"]["top1"])
    assert got["loss"] == pytest.approx(metrics["final"]["loss"], rel=1e-4)

    # --probe_bn false: the linear head alone, recorded so
    run_ok(main, ["--config", PROBE, *FAST, "--data_path", transfer, "--finetune", weights, "--output_dir",
                  tmp_path / "plain", "--epochs", "1", "--probe_features", "cached", "--probe_bn", "false"])
    assert json.loads((tmp_path / "plain/run.json").read_text())["probe_bn"] is False
    assert "head.weight" in torch.load(tmp_path / "plain/weights.pth", weights_only=True)["model"]


def test_feature_batches_follow_the_sampler_and_its_resume_offset():
    from cls_finetune.probe import FeatureBatches
    from training.data import EpochSampler
    feats, labels = torch.arange(10.0)[:, None].repeat(1, 3), torch.arange(10)
    sampler = EpochSampler(10, shuffle=True, seed=3)
    sampler.set_epoch(2)
    order = [i for i, _ in sampler]
    batches = list(FeatureBatches(feats, labels, sampler, batch_size=4, drop_last=True))
    assert len(batches) == 2 == len(FeatureBatches(feats, labels, sampler, 4, drop_last=True))
    assert torch.cat([y for _, y in batches]).tolist() == order[:8]
    assert all(torch.equal(x[:, 0].long(), y) for x, y in batches)
    sampler.set_epoch(2, start=4)  # a run resumed after one update skips its samples
    assert [y.tolist() for _, y in FeatureBatches(feats, labels, sampler, 4, drop_last=True)] == [order[4:8]]
    sampler.set_epoch(2)
    assert [len(y) for _, y in FeatureBatches(feats, labels, sampler, 4, drop_last=False)] == [4, 4, 2]


@pytest.mark.parametrize("flags, fragment", [
    (["--config", DEMO, "--probe_features", "cached"], "only for a --linear_probe"),
    (["--config", PROBE, "--probe_features", "cached", "--mixup", "0.8"], "--mixup 0"),
])
def test_cached_probe_refuses_what_fixed_features_cannot_do(flags, fragment, tmp_path, capsys):
    assert_fails_with(main, [*flags, "--output_dir", tmp_path], capsys, "--probe_features cached", fragment)

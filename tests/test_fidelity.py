"""Where the suite must match the paper (Liu et al., 2023, and its released code):
input normalisation, MLP-Mixer's stochastic depth over blocks, precision, the
gradient-direction estimator, and a preset for every cell of its ImageNet tables."""
import json
import re
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
import torchvision.transforms as T
from timm.layers import DropPath
from torchvision.datasets import ImageFolder

from backbones import DropSites, create_model_with_drop
from backbones.checkpoint import read_checkpoint, split_checkpoint
from backbones.errors import run_cli
from helpers import CPU_PRESETS, REPO, TINY, read_jsonl, run_ok
from pretrain.main import main as pretrain_main

# The paper's normalisation, written out here rather than imported from the code under test.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)  # timm's default for vit_* and mixer_*
TINY_VIT = {"depth": 2, "patch_size": 8, "embed_dim": 96, "num_heads": 3}


def normalize_of(transform):
    """(mean, std) of the Normalize step of a torchvision/timm transform."""
    steps = [t for t in transform.transforms if isinstance(t, T.Normalize)]
    assert len(steps) == 1, transform
    return tuple(float(v) for v in steps[0].mean), tuple(float(v) for v in steps[0].std)


def assert_norm(transform, mean, std):
    got_mean, got_std = normalize_of(transform)
    assert got_mean == pytest.approx(mean, abs=1e-6) and got_std == pytest.approx(std, abs=1e-6)


def pretrain_args(*extra):
    from pretrain.config import parse_args
    return parse_args([str(a) for a in [*TINY, *extra]])


# ---- 1. input normalisation ---------------------------------------------------------


@pytest.mark.parametrize("name,kwargs", [("vit_tiny", TINY_VIT),
                                         ("mixer_s32", {})])  # timm's Mixer sizes are fixed
def test_vit_and_mixer_transforms_use_imagenet_mean_std(name, kwargs):
    from training.data import build_transforms
    model = create_model_with_drop(name, img_size=64, num_classes=3, **kwargs)
    # timm's own default differs, so this test can tell the two apart
    assert tuple(model.pretrained_cfg["mean"]) == pytest.approx(HALF)
    train_tf, val_tf = build_transforms(pretrain_args("--model", name), model)
    assert_norm(train_tf, IMAGENET_MEAN, IMAGENET_STD)
    assert_norm(val_tf, IMAGENET_MEAN, IMAGENET_STD)
    assert tuple(model.pretrained_cfg["mean"]) == pytest.approx(IMAGENET_MEAN)  # what exports record


def paper_format_checkpoint(path, num_classes=12):
    """The paper's release format: a state dict under 'model', no meta."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny", num_classes=num_classes, img_size=32, **TINY_VIT)
    torch.save({"model": model.state_dict()}, path)
    return path


def eval_transform_of_run(argv):
    """The validation transform a pretraining run (e.g. --eval) builds (single process: no process group)."""
    from pretrain.config import parse_args
    from pretrain.run import PretrainRun
    run = PretrainRun(parse_args([str(a) for a in argv]))
    ctx = run.setup()
    return ctx.data.val_loader.dataset.base.transform


def test_pretraining_records_normalisation_and_eval_reads_it_back(small_imagenet, tmp_path):
    out = tmp_path / "run"
    run_ok(pretrain_main, [*TINY, "--data_path", small_imagenet, "--epochs", "1", "--output_dir", out])
    record = json.loads((out / "run.json").read_text())
    assert record["amp"] == "fp32"  # no autocast on CPU by default: the record names the precision
    assert record["normalization"]["mean"] == pytest.approx(IMAGENET_MEAN)
    meta = torch.load(out / "weights.pth", weights_only=True)["meta"]
    assert meta["mean"] == pytest.approx(IMAGENET_MEAN) and meta["std"] == pytest.approx(IMAGENET_STD)
    assert (meta["interpolation"], meta["crop_pct"], meta["input_size"]) == ("bicubic", 1.0, 32)
    _, ckpt_meta = split_checkpoint(read_checkpoint(out / "checkpoint-last.pth"))
    assert ckpt_meta["mean"] == pytest.approx(IMAGENET_MEAN)

    # --eval of an export reads the normalisation from its meta: rewrite it to 0.5 and it follows.
    obj = torch.load(out / "weights.pth", weights_only=True)
    obj["meta"].update(mean=list(HALF), std=list(HALF))
    torch.save(obj, tmp_path / "half.pth")
    argv = [*TINY, "--data_path", small_imagenet, "--eval", "--output_dir", tmp_path / "eval"]
    assert_norm(eval_transform_of_run([*argv, "--finetune", tmp_path / "half.pth"]), HALF, HALF)
    # An export written before the suite recorded normalisation was trained with timm's default (0.5 for ViT).
    del obj["meta"]["mean"], obj["meta"]["std"]
    torch.save(obj, tmp_path / "legacy.pth")
    assert_norm(eval_transform_of_run([*argv, "--finetune", tmp_path / "legacy.pth"]), HALF, HALF)


def test_paper_checkpoint_is_evaluated_with_the_papers_normalisation(small_imagenet, tmp_path):
    paper = paper_format_checkpoint(tmp_path / "paper.pth")
    argv = [*TINY, "--data_path", small_imagenet, "--eval", "--finetune", paper, "--output_dir", tmp_path / "e"]
    assert_norm(eval_transform_of_run(argv), IMAGENET_MEAN, IMAGENET_STD)
    run_ok(pretrain_main, argv)
    assert json.loads((tmp_path / "e/metrics_eval.json").read_text())["val"]["n"] == 48


def test_classification_transfer_reads_the_normalisation_of_its_checkpoint(tmp_path):
    from cls_finetune.config import parse_args
    from training.data import build_transforms
    paper = paper_format_checkpoint(tmp_path / "paper.pth")
    args = parse_args(["--dataset", "imagefolder", "--data_path", str(tmp_path), "--model", "vit_tiny",
                       "--model_kwargs", "{depth: 2, patch_size: 8, embed_dim: 96, num_heads: 3}",
                       "--input_size", "32", "--finetune", str(paper)])
    model = create_model_with_drop("vit_tiny", img_size=32, num_classes=0, **TINY_VIT)
    for tf in build_transforms(args, model):
        assert_norm(tf, IMAGENET_MEAN, IMAGENET_STD)


# ---- the same rule in mmdet / mmseg ------------------------------------------------


def built_demo_model(config, checkpoint, **preprocessor):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(str(REPO / config))
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == "mmdet":
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    cfg.model.backbone.init_cfg.checkpoint = str(checkpoint)
    cfg.model.data_preprocessor.update(preprocessor)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.mark.parametrize("config", ["det_configs/demo/mask-rcnn_vit-demo_fpn_coco-demo.py",
                                    "seg_configs/demo/upernet_vit-demo_ade-demo.py"])
def test_mm_backbone_takes_the_papers_normalisation_and_refuses_another(config, tmp_path):
    from backbones.openmmlab.timm_backbone import InputNormalizationError, check_data_preprocessor
    torch.manual_seed(0)
    pretrained = timm.create_model("vit_tiny", num_classes=12, img_size=64,
                                   **dict(TINY_VIT, depth=4))
    paper = tmp_path / "paper.pth"
    torch.save({"model": pretrained.state_dict()}, paper)  # release format: no meta

    model = built_demo_model(config, paper)
    norm = model.backbone.pretrained_normalization
    assert norm["mean"] == pytest.approx(IMAGENET_MEAN) and norm["std"] == pytest.approx(IMAGENET_STD)
    check_data_preprocessor(model)  # the configs' ImageNet mean/std (0-255 units) match

    half = built_demo_model(config, paper, mean=[127.5] * 3, std=[127.5] * 3)
    with pytest.raises(InputNormalizationError) as err:
        check_data_preprocessor(half)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "data_preprocessor.mean/std" in message and str(paper) in message
    assert "123.675" in message  # says what to set


def test_suite_runner_refuses_a_mismatched_preprocessor_with_one_line(tmp_path, capsys):
    from mmengine.model import BaseModel
    from torch.utils.data import TensorDataset

    from backbones.openmmlab import DropTransferRunner, TimmDropBackbone
    small = dict(TINY_VIT, patch_size=16, img_size=32)
    torch.manual_seed(0)
    paper = tmp_path / "paper.pth"
    torch.save({"model": timm.create_model("vit_tiny", num_classes=3, **small).state_dict()}, paper)

    class Toy(BaseModel):
        def __init__(self, mean, std):
            super().__init__(data_preprocessor=dict(type="ImgDataPreprocessor", mean=mean, std=std))
            self.backbone = TimmDropBackbone("vit_tiny", model_kwargs=small,
                                             init_cfg=dict(type="Pretrained", checkpoint=str(paper)))

        def forward(self, inputs, data_samples=None, mode="loss"):
            return {"loss": sum(f.mean() for f in self.backbone(inputs))}

    def train(mean, std, work_dir):
        data = TensorDataset(torch.rand(4, 3, 32, 32) * 255)
        DropTransferRunner(
            model=Toy(mean, std), work_dir=str(work_dir),
            train_dataloader=dict(dataset=data, batch_size=2, sampler=dict(type="DefaultSampler", shuffle=False),
                                  collate_fn=lambda b: {"inputs": torch.stack([t[0] for t in b])}),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.0)),
            train_cfg=dict(type="IterBasedTrainLoop", max_iters=1),
            default_hooks=dict(checkpoint=None)).train()

    train([123.675, 116.28, 103.53], [58.395, 57.12, 57.375], tmp_path / "ok")
    capsys.readouterr()
    assert run_cli(lambda: train([127.5] * 3, [127.5] * 3, tmp_path / "bad")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data_preprocessor.mean/std" in err, err


# ---- 2. MLP-Mixer: stochastic depth spread linearly over blocks ----------------------


@pytest.mark.parametrize("name,depth", [("mixer_s32", 8), ("mixer_b16", 12)])
def test_mixer_drop_path_per_block_is_linspace_0_to_p(name, depth):
    model = create_model_with_drop(name, drop_path=0.1, img_size=64)
    assert len(model.blocks) == depth
    sites = DropSites(model, name)
    for p in (0.3, 0.0, 0.15):  # the rate setter keeps the spread for every rate it sets
        sites.apply(0.0, p)
        got = [b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0.0 for b in model.blocks]
        np.testing.assert_allclose(got, np.linspace(0, p, depth), atol=1e-12)
    # timm's own Mixer would give every block the same rate: the suite does not.
    reference = timm.create_model(name, drop_path_rate=0.3, img_size=64)
    assert {b.drop_path.drop_prob for b in reference.blocks} == {0.3}


# ---- 3. precision --------------------------------------------------------------------


def test_paper_presets_train_in_fp32():
    from pretrain.config import parse_args
    for path in PRESETS:
        if path.stem not in CPU_PRESETS:
            assert parse_args(["--config", str(path)]).amp == "none", path.name


# ---- 4. GDE / GDV estimator --------------------------------------------------------------


@pytest.mark.parametrize("n,compared,reference", [(96, 24, 40), (96, 48, 0), (10, 4, 6), (1000, 64, 900)])
def test_gde_reference_is_disjoint_from_the_compared_minibatches(n, compared, reference):
    from pretrain.data import diagnostic_split
    a, b = diagnostic_split(n, compared, reference, seed=3)
    assert len(a) == compared and len(set(a)) == compared
    assert len(b) == (n - compared if reference == 0 else reference) and len(set(b)) == len(b)
    assert not set(a) & set(b) and set(a) | set(b) <= set(range(n))
    assert diagnostic_split(n, compared, reference, seed=3) == (a, b)  # fixed by the seed


def test_diag_samples_larger_than_what_is_left_is_refused(small_imagenet):
    from pretrain.data import diagnostic_batches
    from training.config import ConfigError
    args = Namespace(data_path=str(small_imagenet), diag_batches=3, batch_size=16, diag_samples=49, seed=0,
                     num_workers=0)
    with pytest.raises(ConfigError, match=r"--diag_samples 49: only 48 training images are left"):
        diagnostic_batches(args, T.ToTensor())


def test_gde_and_gdv_match_a_brute_force_computation(small_imagenet):
    """The whole pipeline (image selection + estimator) against explicit loops over
    images read straight from the folder."""
    from pretrain.data import diagnostic_batches, diagnostic_split
    from pretrain.diagnostics import measure
    tf = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    args = Namespace(data_path=str(small_imagenet), diag_batches=3, batch_size=8, diag_samples=40, seed=3,
                     num_workers=0)
    torch.manual_seed(1)
    model = timm.create_model("vit_tiny", num_classes=12, img_size=32, depth=1, patch_size=8, embed_dim=32,
                              num_heads=2, proj_drop_rate=0.3).double()
    compared, reference = diagnostic_batches(args, tf)
    ours = measure(model, nn.CrossEntropyLoss(),
                   [(x.double(), y) for x, y in compared], [(x.double(), y) for x, y in reference], "cpu", seed=5)

    folder = ImageFolder(str(Path(small_imagenet) / "train"), tf)
    idx_compared, idx_reference = diagnostic_split(len(folder), 24, 40, seed=3)
    assert not set(idx_compared) & set(idx_reference)

    def stack(indices):
        items = [folder[i] for i in indices]
        return torch.stack([x for x, _ in items]).double(), torch.tensor([y for _, y in items])

    def grad(x, y):
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    model.eval()  # the reference: one batch of all reference images, dropout off
    full = grad(*stack(idx_reference))
    model.train()  # the compared mini-batches: dropout on, the same draws as measure's
    torch.manual_seed(5)
    grads = [grad(*stack(idx_compared[i:i + 8])) for i in range(0, 24, 8)]

    def cos_dist(u, v):
        return float((1 - torch.dot(u, v) / (u.norm() * v.norm())) / 2)

    gde = sum(cos_dist(g, full) for g in grads) / 3
    gdv = sum(cos_dist(grads[i], grads[j]) for i in range(3) for j in range(i + 1, 3)) / 3
    assert ours["gde"] == pytest.approx(gde, rel=1e-6) and ours["gdv"] == pytest.approx(gdv, rel=1e-6)
    assert ours["grad_norm"] == pytest.approx(sum(float(g.norm()) for g in grads) / 3, rel=1e-6)
    assert 0 < gde < 1 and 0 < gdv < 1


def diagnostics_hook(tmp_path, data, resuming):
    """PretrainRun's diagnostics hook on a tiny model, for a new or a resumed run."""
    from pretrain.run import PretrainRun
    args = pretrain_args("--data_path", data, "--diag_every", "2", "--diag_batches", "2", "--diag_samples", "16",
                         "--output_dir", tmp_path)
    run = PretrainRun(args)
    run.val_tf = T.Compose([T.Resize(32), T.ToTensor()])
    model = create_model_with_drop("vit_tiny", img_size=32, num_classes=12, **TINY_VIT)
    ctx = SimpleNamespace(out=tmp_path, resuming=resuming, model=model, plan=lambda step: (0.0, 0.0),
                          sites=DropSites(model), device=torch.device("cpu"), iters_per_epoch=4,
                          next_step=6 if resuming else 0)
    return run.update_hook(ctx)


def test_a_resumed_run_without_init_weights_marks_model_distance_unavailable(small_imagenet, tmp_path):
    hook = diagnostics_hook(tmp_path, small_imagenet, resuming=False)  # new run: W0 saved, measured at 0
    assert (tmp_path / "init_weights.pth").is_file()
    assert read_jsonl(tmp_path / "diagnostics.jsonl")[0]["model_distance"] == 0.0
    (tmp_path / "init_weights.pth").unlink()
    hook = diagnostics_hook(tmp_path, small_imagenet, resuming=True)
    hook(8)
    last = read_jsonl(tmp_path / "diagnostics.jsonl")[-1]
    assert last["step"] == 8 and last["model_distance"] is None and 0 < last["gdv"] < 1
    assert not (tmp_path / "init_weights.pth").exists()  # the current weights were not taken as W0


# ---- 5. a preset for every cell of the paper's ImageNet tables -----------------------------

# The facebookresearch/dropout README (the paper's Tables 1 and 3): (table, model, method) -> top-1.
PAPER_TABLES = {
    "basic": {
        "vit_tiny": {"no_dropout": 73.9, "standard_dropout": 67.9, "standard_sd": 72.6, "early_dropout": 74.3,
                     "early_sd": 74.4},
        "mixer_s32": {"no_dropout": 71.0, "standard_dropout": 67.1, "standard_sd": 70.5, "early_dropout": 71.3,
                      "early_sd": 71.7},
        "swin_femto": {"no_dropout": 74.3, "standard_dropout": 71.6, "standard_sd": 73.7, "early_dropout": 74.7,
                       "early_sd": 75.2},
        "convnext_femto": {"no_dropout": 76.1, "standard_sd": 75.5, "early_sd": 76.3},
    },
    "improved": {
        "vit_tiny": {"no_dropout": 76.3, "standard_dropout": 71.5, "standard_sd": 75.6, "early_dropout": 76.7,
                     "early_sd": 76.7},
        "swin_femto": {"no_dropout": 76.1, "standard_dropout": 73.5, "standard_sd": 75.6, "early_dropout": 76.6,
                       "early_sd": 76.6},
        "convnext_femto": {"no_dropout": 77.5, "standard_sd": 77.4, "early_sd": 77.7},
    },
    "late": {
        "vit_base": {"standard_sd": 81.6, "late_sd": 82.3},
        "mixer_b16": {"standard_sd": 78.0, "late_sd": 78.6},
    },
}
# Cells whose drop rates the README's commands give for that very model (the rest are assumptions).
README_RATES = {("basic", "vit_tiny", "standard_dropout"): ("dropout", 0.1),
                ("basic", "vit_tiny", "early_dropout"): ("dropout", 0.1),
                ("basic", "vit_tiny", "early_sd"): ("drop_path", 0.5),
                ("improved", "vit_tiny", "standard_dropout"): ("dropout", 0.1),
                ("improved", "vit_tiny", "early_dropout"): ("dropout", 0.1),
                ("improved", "vit_tiny", "early_sd"): ("drop_path", 0.5),
                ("late", "vit_base", "late_sd"): ("drop_path", 0.4)}
# Late s.d. on models the paper never ran it on: kept for the transfer configs, without a paper number.
EXTENSIONS = {"vit_tiny_late_sd", "swin_femto_late_sd", "convnext_femto_late_sd"}
PRESETS = sorted((REPO / "pretrain_configs").glob("*.yaml"))


def cell_of(args):
    """(table, model, method) that a preset's flags describe."""
    recipe = {(300, 0.8, 1.0): "basic", (600, 0.3, 0.3): "improved"}[(args.epochs, args.mixup, args.cutmix)]
    if args.dropout == 0 and args.drop_path == 0:
        method = "no_dropout"
    else:
        method = f"{args.drop_mode}_{'dropout' if args.dropout > 0 else 'sd'}"
        if args.drop_mode == "early":
            assert (args.drop_schedule, args.cutoff_epoch) == ("linear", 50)
        if args.drop_mode == "late":
            assert (args.drop_schedule, args.cutoff_epoch) == ("constant", 50)
    table = "late" if args.model in ("vit_base", "mixer_b16") else recipe
    return table, args.model, method


def test_every_cell_of_the_papers_tables_has_one_preset_with_its_top1():
    from pretrain.config import parse_args
    cells = {(t, m, k): v for t, models in PAPER_TABLES.items() for m, row in models.items() for k, v in row.items()}
    assert len(cells) == 35
    found = {}
    for path in PRESETS:
        if path.stem in CPU_PRESETS:
            continue
        args = parse_args(["--config", str(path)])
        text = path.read_text()
        if path.stem in EXTENSIONS:
            assert args.paper_top1 is None and "NOT a cell of the paper's tables" in text, path.name
            continue
        cell = cell_of(args)
        assert cell in cells and cell not in found, (path.name, cell)
        found[cell] = path.stem
        assert args.paper_top1 == cells[cell], path.name
        assert (args.input_size, args.crop_pct, args.lr, args.update_freq * args.batch_size * 8) == \
               (224, 0.875, 0.004, 4096), path.name
        # Rates the README does not give are labelled the suite's assumption, and only those.
        if cell in README_RATES:
            kind, rate = README_RATES[cell]
            assert getattr(args, kind) == rate and "assumption" not in text, path.name
        elif cell[2] != "no_dropout":
            assert re.search(r"^# Rates: the suite's assumption", text, re.M), path.name
    assert set(found) == set(cells), sorted(set(cells) - set(found))


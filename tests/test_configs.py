"""Every shipped det and seg config parses, builds its model with the real
backbone, and loads a checkpoint written by pretraining into it."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from backbones.openmmlab.timm_backbone import check_data_preprocessor
from demo_data import write_imagenet
from helpers import CPU_PRESETS, REPO, TINY
from pretrain.main import main as pretrain_main

CONFIGS = sorted(str(p.relative_to(REPO)) for d in ("det_configs", "seg_configs")
                 for p in (REPO / d).rglob("*.py") if "_base_" not in p.parts and "demo" not in p.parts)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """weights.pth from a one-update pretraining run of each full-size architecture."""
    root = tmp_path_factory.mktemp("pre")
    write_imagenet(root / "data", train_per_class=2, val_per_class=1, size=64, seed=7)
    out = {}
    for arch in ("vit_tiny", "swin_femto", "convnext_femto"):
        run = root / arch
        argv = [*TINY, "--model", arch, "--model_kwargs", "{}", "--input_size", "224", "--batch_size", "16",
                "--data_path", root / "data", "--epochs", "1", "--output_dir", run]
        assert pretrain_main([str(a) for a in argv]) == 0
        out[arch] = run / "weights.pth"
    return out


def test_one_config_per_architecture_and_recipe():
    assert len([c for c in CONFIGS if c.startswith("det_configs")]) == 6  # 1x and ms-3x
    assert len([c for c in CONFIGS if c.startswith("seg_configs")]) == 3
    for c in CONFIGS:  # the checkpoint comes from --pretrained / the suite, never from the file
        arch = Path(c).parent.name
        assert Path(c).stem.split("_")[1] == arch.replace("_", "-"), c
        assert Config.fromfile(str(REPO / c)).model.backbone.init_cfg.checkpoint is None, c


@pytest.mark.parametrize("config", CONFIGS)
def test_config_builds_and_loads_a_pretraining_checkpoint(config, checkpoints):
    # A fresh current logger: mmengine's init_weights writes to the current one's log file, and
    # an earlier in-process run's logger may have had its file closed since.
    from mmengine.logging import MMLogger
    MMLogger.get_instance(f"test_configs:{config}")
    cfg = Config.fromfile(str(REPO / config))
    scope = cfg.default_scope
    assert scope in ("mmdet", "mmseg") and cfg.runner_type == "DropTransferRunner"
    init_default_scope(scope)
    if scope == "mmdet":
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    arch = cfg.model.backbone.arch
    assert arch == Path(config).parent.name
    cfg.model.backbone.init_cfg.checkpoint = str(checkpoints[arch])
    model = MODELS.build(cfg.model)
    model.init_weights()
    check_data_preprocessor(model)  # the config normalises inputs as pretraining did (ImageNet mean/std)
    saved = torch.load(checkpoints[arch], weights_only=True)["model"]
    own = model.backbone.model.state_dict()
    shared = [k for k in own if k in saved]
    assert len(shared) > 0.9 * len(own)
    for k in shared:
        torch.testing.assert_close(own[k], saved[k], msg=k)
    assert model.backbone.pretrained_provenance["pretrain"]["arch"] == arch


PRETRAIN_CONFIGS = sorted((REPO / "pretrain_configs").glob("*.yaml"))


@pytest.mark.parametrize("path", PRETRAIN_CONFIGS, ids=lambda p: p.name)
def test_pretrain_configs_parse_and_give_valid_schedules(path):
    from backbones import DropPlan
    from pretrain.config import parse_args
    args = parse_args(["--config", str(path)])
    plan = DropPlan.build(dropout=args.dropout, drop_path=args.drop_path, drop_mode=args.drop_mode,
                          drop_schedule=args.drop_schedule, cutoff_epoch=args.cutoff_epoch, epochs=args.epochs,
                          iters_per_epoch=1251)
    stem = path.stem
    assert args.eval_every == 1 or stem in CPU_PRESETS  # the paper validated after every epoch
    # The file name says what the file holds.
    assert args.output_dir.endswith(stem) or stem in CPU_PRESETS
    if "no_dropout" in stem or stem in CPU_PRESETS:
        assert plan.describe() == "no dropout"
    else:
        mode = next(m for m in ("early", "late", "standard") if m in stem)
        kind = "drop_path" if stem.endswith(("_sd", "_sd_improved")) else "dropout"
        assert plan.mode == mode and getattr(plan, kind).rate > 0, stem


# Images trained on and tested of the paper suite's datasets (their torchvision splits).
SPLITS = {"cifar10": (50000, 10000), "cifar100": (50000, 10000), "dtd": (3760, 1880), "flowers102": (2040, 6149),
          "food101": (75750, 25250), "pets": (3680, 3669), "stl10": (5000, 8000),
          "sun397": (19850, 19850), "stanford_cars": (8144, 8041), "fgvc_aircraft": (6667, 3333),
          "caltech101": (3030, 5650), "voc2007": (5011, 4952), "birdsnap": (47000, 2443)}


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_dataset_configs_keep_evaluation_under_a_tenth_of_either_recipe(name):
    """Forward passes: an evaluated test image 1, a trained image 3 when fine-tuning
    (forward and backward), 1 in a per-step linear probe (the frozen backbone's forward)."""
    from cls_finetune.config import parse_args
    train, test = SPLITS[name]
    for recipe, passes in (("finetune", 3), ("linear_probe", 1)):
        args = parse_args(["--config", str(REPO / f"cls_configs/_base_/{recipe}.yaml"),
                           str(REPO / f"cls_configs/datasets/{name}.yaml")])
        per_update = args.batch_size * 8  # the recipes' 8 GPUs
        trained = train // per_update * per_update
        evaluated = sum((e + 1) % args.eval_every == 0 or e == args.epochs - 1 for e in range(args.epochs))
        share = evaluated * test / (args.epochs * passes * trained + evaluated * test)
        assert share < 0.10, (recipe, args.eval_every, share)


def test_paper_suite_parses_and_starts_from_shipped_pretraining_configs():
    from cls_finetune.config import parse_args as cls_parse_args
    from cls_finetune.datasets import DATASETS
    from pretrain.config import parse_args
    from suite import load_suite
    suite = load_suite(REPO / "suites/paper.yaml")
    jobs = suite.by_key()
    models = {}
    for job in (j for j in suite.jobs if j.stage == "pretrain"):  # flags parse; a shipped preset; the suite's dir
        args = parse_args(job.argv)
        preset = Path(job.argv[job.argv.index("--config") + 1])
        assert preset in PRETRAIN_CONFIGS and args.model == parse_args(["--config", str(preset)]).model
        assert (args.output_dir, args.seed, args.resume) == (str(job.run_dir), job.seed, "auto")
        models[job.key] = args.model
    cls = [j for j in suite.jobs if j.stage == "cls"]
    assert {j.task.split("/")[1] for j in cls} == set(DATASETS)
    assert len(cls) == 3 * len(DATASETS) * len({j.pretrain for j in cls}) * 3  # finetune, linear probe, fixed feature
    for job in cls:  # every run's flags parse: recipe, then dataset config, then the suite's own
        recipe, dataset = job.task.split("/")
        args = cls_parse_args(job.argv)
        assert (args.dataset, args.linear_probe, args.input_size) == (dataset, recipe != "finetune", 224)
        assert args.fixed_feature == (recipe == "fixed_feature")
        assert args.finetune == str(jobs[job.depends_on].run_dir / "weights.pth") and args.seed == job.seed
        assert args.epochs >= 100 and args.data_path == f"data/{dataset}"
    backbones = {}
    for job in (j for j in suite.jobs if j.stage in ("det", "seg")):  # a config of the pretraining's architecture
        if job.argv[0] not in backbones:
            backbones[job.argv[0]] = Config.fromfile(job.argv[0]).model.backbone.arch
        assert backbones[job.argv[0]] == models[job.depends_on], (job.key, job.argv[0])

"""Real Mask R-CNN (mmdet) and UperNet (mmseg) fine-tuning from a pretraining
checkpoint on the generated COCO / ADE20K data, on the CPU, with the real
evaluators (pycocotools bbox/segm AP, mIoU)."""
import glob
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backbones.checkpoint import file_sha256
from backbones.openmmlab.hooks import NO_METRICS
from demo_data import PRETRAIN_CATEGORIES, category_name, write_ade20k, write_coco, write_imagenet
from helpers import REPO, TINY, assert_fails_with
from pretrain.main import main as pretrain_main


def _tool(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"dt_tools_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_tool, test_tool = _tool("train"), _tool("test")  # tools/train.py, tools/test.py

DET_DEMO = REPO / "det_configs/demo/mask-rcnn_vit-demo_fpn_coco-demo.py"
SEG_DEMO = REPO / "seg_configs/demo/upernet_vit-demo_ade-demo.py"
# The demo configs' ViT, two blocks deep to keep the tests short.
VIT = ["--model_kwargs", "{depth: 2, patch_size: 8, embed_dim: 96, num_heads: 3}", "--input_size", "64"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    write_imagenet(root / "imagenet", train_per_class=4, val_per_class=1, size=64, seed=3)
    out = root / "run"
    assert pretrain_main([str(a) for a in [*TINY, *VIT, "--data_path", root / "imagenet", "--epochs", "1",
                                           "--output_dir", out]]) == 0
    return out / "weights.pth"


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_coco(root, train_images=6, val_images=4, size=128, seed=5)
    return root


@pytest.fixture(scope="module")
def ade(tmp_path_factory):
    root = tmp_path_factory.mktemp("ade")
    write_ade20k(root, train_images=6, val_images=3, size=128, seed=6)
    return root


def det_options(coco, weights, epochs=1):
    """--cfg-options for the demo config on ``coco``; ``weights`` None: the checkpoint is left to --pretrained."""
    ann = f"{coco}/annotations/instances_val2017.json"
    return [f"train_dataloader.dataset.data_root={coco}/", f"val_dataloader.dataset.data_root={coco}/",
            f"test_dataloader.dataset.data_root={coco}/", f"val_evaluator.ann_file={ann}",
            f"test_evaluator.ann_file={ann}", "model.backbone.model_kwargs.depth=2", f"train_cfg.max_epochs={epochs}",
            f"train_cfg.val_interval={epochs}", "default_hooks.checkpoint.interval=1",
            *([f"model.backbone.init_cfg.checkpoint={weights}"] if weights else [])]


def seg_options(ade, weights, iters=4):
    return [f"train_dataloader.dataset.data_root={ade}", f"val_dataloader.dataset.data_root={ade}",
            f"test_dataloader.dataset.data_root={ade}", f"model.backbone.init_cfg.checkpoint={weights}",
            "model.backbone.model_kwargs.depth=2", f"train_cfg.max_iters={iters}",
            f"train_cfg.val_interval={iters}", f"default_hooks.checkpoint.interval={iters}",
            "train_dataloader.batch_size=2"]


def test_demo_configs_name_the_generated_classes():
    from mmengine.config import Config
    names = tuple(category_name(c) for c in PRETRAIN_CATEGORIES)
    assert tuple(Config.fromfile(str(DET_DEMO)).classes) == names
    assert tuple(Config.fromfile(str(SEG_DEMO)).classes) == names


def test_mask_rcnn_fine_tunes_and_reports_coco_ap(tmp_path, coco, pretrained):
    work = tmp_path / "det"
    assert train_tool.main([str(DET_DEMO), "--work-dir", str(work), "--cfg-options",
                            *det_options(coco, pretrained)]) == 0
    metrics = json.loads((work / "metrics.json").read_text())
    for key in ("coco/bbox_mAP", "coco/segm_mAP", "coco/bbox_mAP_50"):
        assert 0.0 <= metrics["metrics"][key] <= 1.0, key
    assert metrics["finished"] is True
    record = json.loads((work / "run.json").read_text())
    assert record["kind"] == "mmdet" and "task" not in record and record["backbone"] == "vit_tiny"
    assert record["start_checkpoint"]["sha256"] == file_sha256(pretrained)
    assert record["start_checkpoint"]["pretrain"]["method"] == "no dropout"
    scalars = glob.glob(str(work / "*/vis_data/scalars.json"))
    losses = [json.loads(line) for line in Path(scalars[0]).read_text().splitlines() if '"loss"' in line]
    assert losses and all(math.isfinite(r["loss"]) for r in losses)

    # tools/test.py on the fine-tuned checkpoint gives the same AP.
    ckpt = work / "epoch_1.pth"
    assert test_tool.main([str(DET_DEMO), str(ckpt), "--work-dir", str(tmp_path / "eval"), "--cfg-options",
                           *det_options(coco, pretrained)]) == 0
    tested = json.loads((tmp_path / "eval/metrics_test.json").read_text())
    assert tested["coco/bbox_mAP"] == pytest.approx(metrics["metrics"]["coco/bbox_mAP"])
    # No detection above the threshold: mmdet's CocoMetric returns no AP, and the record says why.
    assert test_tool.main([str(DET_DEMO), str(ckpt), "--work-dir", str(tmp_path / "none"), "--cfg-options",
                           *det_options(coco, pretrained), "model.test_cfg.rcnn.score_thr=1.01"]) == 0
    assert json.loads((tmp_path / "none/metrics_test.json").read_text()) == {"note": NO_METRICS}


def test_det_config_runs_through_mmdets_stock_train_script(tmp_path, coco, pretrained):
    import mmdet
    stock = Path(mmdet.__file__).parent / ".mim/tools/train.py"
    work = tmp_path / "stock"
    res = subprocess.run([sys.executable, str(stock), str(DET_DEMO), "--work-dir", str(work), "--cfg-options",
                          *det_options(coco, pretrained)], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((work / "run.json").read_text())["start_checkpoint"]["sha256"] == file_sha256(pretrained)
    assert "coco/segm_mAP" in json.loads((work / "metrics.json").read_text())["metrics"]


def test_det_resume_continues_from_the_saved_epoch(tmp_path, coco, pretrained):
    work = tmp_path / "det"
    # The first epoch through the torchrun launcher with one (CPU) process, the checkpoint from --pretrained.
    res = subprocess.run(["bash", str(REPO / "tools/dist_train.sh"), str(DET_DEMO), "1", "--work-dir", str(work),
                          "--pretrained", str(pretrained), "--cfg-options", *det_options(coco, None, epochs=1)],
                         capture_output=True, text=True, env={**os.environ, "PORT": "29533"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert train_tool.main([str(DET_DEMO), "--work-dir", str(work), "--resume", "--cfg-options",
                            *det_options(coco, pretrained, epochs=2)]) == 0
    record = json.loads((work / "metrics.json").read_text())
    assert record["epoch"] == 2 and (work / "epoch_2.pth").is_file()
    info = json.loads((work / "run.json").read_text())
    assert info["resume"] is True and info["start_checkpoint"]["sha256"] == file_sha256(pretrained)


def test_upernet_fine_tunes_and_reports_miou(tmp_path, ade, pretrained):
    work = tmp_path / "seg"
    assert train_tool.main([str(SEG_DEMO), "--work-dir", str(work), "--cfg-options",
                            *seg_options(ade, pretrained)]) == 0
    metrics = json.loads((work / "metrics.json").read_text())
    assert 0.0 <= metrics["metrics"]["mIoU"] <= 100.0 and metrics["iter"] == 4
    record = json.loads((work / "run.json").read_text())
    assert record["kind"] == "mmseg" and "task" not in record
    assert record["start_checkpoint"]["sha256"] == file_sha256(pretrained)


def test_missing_dataset_and_wrong_checkpoint_fail_in_one_line(tmp_path, coco, pretrained, capsys):
    missing = tmp_path / "no_coco"
    assert train_tool.main([str(DET_DEMO), "--work-dir", str(tmp_path / "w1"), "--cfg-options",
                            *det_options(coco, pretrained), f"train_dataloader.dataset.data_root={missing}/"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err

    import timm
    wrong = tmp_path / "convnext.pth"
    torch.save({"model": timm.create_model("convnext_femto").state_dict()}, wrong)
    assert train_tool.main([str(DET_DEMO), "--work-dir", str(tmp_path / "w2"), "--cfg-options",
                            *det_options(coco, pretrained), f"model.backbone.init_cfg.checkpoint={wrong}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "convnext.pth does not match" in err and "missing from the file" in err and "blocks.0" in err


def test_coco_data_without_the_configs_classes_is_one_line(tmp_path, coco, pretrained, capsys):
    # mmdet keeps no image of such a file and mmengine fails deep inside with
    # "need at least one array to concatenate"; the launcher says what is wrong instead.
    assert train_tool.main([str(DET_DEMO), "--work-dir", str(tmp_path / "w"), "--cfg-options",
                            *det_options(coco, pretrained), "train_dataloader.dataset.metainfo.classes=(cat,dog)"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "instances_train2017.json" in err and "cat, dog" in err and "solid circle" in err, err


def test_a_recipe_config_needs_a_checkpoint_and_names_the_flag(tmp_path, capsys):
    config = REPO / "det_configs/vit_tiny/mask-rcnn_vit-tiny_fpn_1x_coco.py"
    assert_fails_with(train_tool.main, [config, "--work-dir", tmp_path / "w"], capsys,
                      "names no pretrained checkpoint", "--pretrained PATH",
                      "model.backbone.init_cfg.checkpoint=PATH")
    assert_fails_with(train_tool.main, [config, "--pretrained", tmp_path / "none.pth"], capsys,
                      f"--pretrained {tmp_path / 'none.pth'}: no such file")
    # the retired per-variant file names say what replaced them
    old = REPO / "seg_configs/swin_femto/upernet_swin-femto_512x512_160k_ade20k_early-sd.py"
    assert_fails_with(train_tool.main, [old], capsys, "was retired",
                      "seg_configs/swin_femto/upernet_swin-femto_512x512_160k_ade20k.py",
                      "--pretrained output/pretrain/swin_femto_early_sd/weights.pth")


def test_pretrained_of_another_architecture_is_one_line_naming_the_flag(tmp_path, coco, capsys):
    import timm
    wrong = tmp_path / "convnext.pth"
    torch.save({"model": timm.create_model("convnext_femto").state_dict(),
                "meta": {"arch": "convnext_femto", "method": "no dropout"}}, wrong)
    assert_fails_with(train_tool.main, [DET_DEMO, "--work-dir", tmp_path / "w", "--pretrained", wrong,
                                        "--cfg-options", *det_options(coco, None)], capsys,
                      f"--pretrained {wrong}: checkpoint", "convnext_femto")

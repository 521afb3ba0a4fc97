"""The run-record module: atomic writes, the finished rule, identity and metrics of
every kind of run (read back from real tiny runs of the suite's own writers, and
from records in the older formats), discovery and stale checkpoints."""
import json
import os
from pathlib import Path

import pytest

import records
from backbones.checkpoint import file_sha256
from demo_data import write_ade20k, write_coco, write_transfer
from helpers import REPO, TINY, read_jsonl, run_ok

FAST = ["--num_workers", "0", "--tensorboard", "false"]
VIT = ["--model_kwargs", "{depth: 2, patch_size: 8, embed_dim: 96, num_heads: 3}"]


# ---- files -------------------------------------------------------------------------------------

def test_write_json_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    records.write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]

    # A crash between writing and renaming leaves the old file whole.
    def crash(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        records.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_read_json_names_the_file_and_jsonl_stops_at_a_cut_line(tmp_path):
    bad = tmp_path / "run.json"
    bad.write_text('{"kind": "pret')
    with pytest.raises(records.RecordError, match="run.json: not valid JSON"):
        records.read_json(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(records.RecordError, match="expected a JSON object, found a list"):
        records.read_json(bad)
    log = tmp_path / "log.jsonl"
    log.write_text('{"epoch": 0}\n{"epoch": 1}\n{"epo')
    assert records.read_jsonl(log) == [{"epoch": 0}, {"epoch": 1}]
    assert records.read_jsonl(tmp_path / "none.jsonl") == []


# ---- the finished rule and started_from, old and new formats -----------------------------------

@pytest.mark.parametrize("metrics, finished", [
    (None, False),                                                      # crashed before the end
    ({"epoch": 1, "iter": 6, "metrics": {}, "finished": False}, False),  # det/seg: validated, not ended
    ({"epoch": 2, "iter": 12, "metrics": {"mIoU": 3.0}, "finished": True}, True),
    ({"kind": "pretrain", "final": {"top1": 50.0}}, True),              # training run, older record
    ({"kind": "pretrain", "final": {"top1": 50.0}, "finished": True}, True),
    ({"kind": "pretrain"}, False),
])
def test_is_finished(tmp_path, metrics, finished):
    if metrics is not None:
        records.write_json(tmp_path / records.METRICS, metrics)
    assert records.is_finished(tmp_path) is finished


def test_a_damaged_metrics_file_counts_as_finished_but_names_no_checkpoint(tmp_path):
    (tmp_path / records.METRICS).write_text('{"kind": "cls_fine')
    assert records.is_finished(tmp_path) and records.started_from(tmp_path) is None


def test_started_from_classification_and_old_det_records(tmp_path):
    cls, det = tmp_path / "cls", tmp_path / "det"
    cls.mkdir()
    det.mkdir()
    records.write_final_metrics(cls, {"kind": "cls_finetune", "final": {"top1": 1.0}, "pretrain_sha256": "ab" * 32})
    assert records.started_from(cls) == "ab" * 32
    # A det record from before metrics.json carried the sha: run.json's start checkpoint.
    records.write_run_info(det, {"task": "mmdet", "start_checkpoint": {"path": "/x.pth", "sha256": "cd" * 32}})
    records.write_json(det / records.METRICS, {"epoch": 1, "iter": 3, "metrics": {}, "finished": True})
    assert records.started_from(det) == "cd" * 32
    assert records.started_from(tmp_path / "nothing") is None


# ---- reading records written in the older formats ----------------------------------------------

def test_an_old_det_record_reads_with_its_task_key_and_drawn_seed(tmp_path):
    records.write_run_info(tmp_path, {
        "task": "mmdet", "config": "/repo/det_configs/vit_tiny/mask-rcnn_vit-tiny_fpn_1x_coco_early-sd.py",
        "backbone": "vit_tiny", "seed": 123456, "fine_tune_drop": "standard",
        "start_checkpoint": {"path": "/w.pth", "sha256": "ef" * 32,
                             "pretrain": {"arch": "vit_tiny", "method": "early-linear drop_path 0.1 until epoch 50",
                                          "epochs": 300, "seed": 0}}})
    records.write_json(tmp_path / records.METRICS, {"epoch": 12, "iter": 100, "finished": True, "metrics": {
        "coco/bbox_mAP": 0.312, "coco/segm_mAP": 0.289, "coco/bbox_mAP_50": 0.5}})
    rec = records.read_run(tmp_path)
    assert (rec.kind, rec.task, rec.dataset, rec.recipe) == ("mmdet", "detection", "coco",
                                                             "mask-rcnn_vit-tiny_fpn_1x_coco")
    assert (rec.method, rec.pretrain_seed, rec.seed, rec.pretrain_recipe) == (
        "early-linear drop_path 0.1 until epoch 50", 0, 123456, "pretrained 300 ep")
    assert rec.status == records.FINISHED
    assert rec.metrics == pytest.approx({"box_AP": 31.2, "mask_AP": 28.9, "box_AP50": 50.0})


@pytest.mark.parametrize("config,recipe", [
    ("det_configs/vit_tiny/mask-rcnn_vit-tiny_fpn_ms-3x_coco.py", "mask-rcnn_vit-tiny_fpn_ms-3x_coco"),
    ("seg_configs/convnext_femto/upernet_convnext-femto_512x512_160k_ade20k_late-sd.py",  # retired name
     "upernet_convnext-femto_512x512_160k_ade20k"),
    ("my_configs/mask-rcnn_mine_no-dropout.py", "mask-rcnn_mine_no-dropout")])  # a user's name: as it is
def test_a_det_seg_recipe_is_named_by_its_config(tmp_path, config, recipe):
    records.write_run_info(tmp_path, {"kind": "mmdet", "config": config, "backbone": "vit_tiny"})
    assert records.read_run(tmp_path).recipe == recipe


def test_unknown_kind_and_missing_run_json_are_record_errors(tmp_path):
    with pytest.raises(records.RecordError, match="no run.json"):
        records.read_run(tmp_path)
    records.write_run_info(tmp_path, {"kind": "something"})
    with pytest.raises(records.RecordError, match="unknown kind 'something'"):
        records.read_run(tmp_path)


def test_discover_finds_run_dirs_and_reports_damaged_ones(tmp_path):
    for name in ("a", "b/c"):
        (tmp_path / name).mkdir(parents=True)
        records.write_run_info(tmp_path / name, {"kind": "pretrain", "model": "vit_tiny", "method": "no dropout"})
    (tmp_path / "a/tensorboard").mkdir()  # not searched: a run dir holds no other run
    (tmp_path / "b/c" / records.METRICS).write_text("{")
    with pytest.raises(records.RecordError, match=r"b/c/metrics.json: not valid JSON"):
        records.discover([tmp_path])
    found = records.discover([tmp_path, tmp_path / "a"], skip_unreadable=True)
    assert [(r.run_dir.relative_to(tmp_path).as_posix(), r.status) for r in found] == [
        ("a", records.UNFINISHED), ("b/c", records.UNREADABLE)]
    with pytest.raises(records.RecordError, match="no such directory"):
        records.discover([tmp_path / "missing"])


def test_mark_stale_hashes_each_checkpoint_once(tmp_path):
    ckpt = tmp_path / "weights.pth"
    ckpt.write_bytes(b"pretrained once")
    sha = file_sha256(ckpt)
    runs = []
    for seed in (0, 1):
        d = tmp_path / f"seed{seed}"
        d.mkdir()
        records.write_run_info(d, {"kind": "mmseg", "config": "upernet_x_early-sd.py", "randomness_seed": seed,
                                   "start_checkpoint": {"path": str(ckpt), "sha256": sha,
                                                        "pretrain": {"arch": "vit_tiny", "method": "no dropout"}}})
        records.record_validation(d, {"epoch": 0, "iter": 4, "metrics": {"mIoU": 10.0}, "finished": False})
        records.mark_finished(d, True)
        runs.append(records.read_run(d))
    calls = []

    def hasher(path):
        calls.append(path)
        return file_sha256(path)
    records.mark_stale(runs, hasher)
    assert [r.status for r in runs] == [records.FINISHED] * 2
    ckpt.write_bytes(b"pretrained again")
    runs = [records.read_run(r.run_dir) for r in runs]
    records.mark_stale(runs, hasher)
    assert [r.status for r in runs] == [records.STALE] * 2 and "changed after this run" in runs[0].note
    assert len(calls) == 2  # once per mark_stale call, not once per run


# ---- the writers, in real tiny runs ------------------------------------------------------------

@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, small_imagenet):
    from pretrain.main import main as pretrain_main
    out = tmp_path_factory.mktemp("records_pre") / "run"
    run_ok(pretrain_main, [*TINY, *FAST, "--data_path", small_imagenet, "--epochs", "2", "--seed", "3",
                           "--dropout", "0.1", "--drop_mode", "early", "--cutoff_epoch", "1", "--paper_top1", "74.3",
                           "--output_dir", out])
    return out


def test_a_pretraining_run_reads_back(pretrained):
    assert records.is_finished(pretrained)
    rec = records.read_run(pretrained)
    raw = json.loads((pretrained / records.METRICS).read_text())
    assert raw["finished"] is True
    assert (rec.kind, rec.status, rec.seed, rec.pretrain_seed, rec.paper_top1) == ("pretrain", "finished", 3, 3, 74.3)
    assert rec.method == "early-constant dropout 0.1 until epoch 1" and rec.recipe == "2 ep"
    assert rec.arch == "vit_tiny(depth=2,embed_dim=96,num_heads=3,patch_size=8)"
    assert rec.dataset == Path(rec.info["data_path"]).name  # the ImageNet folder's name
    assert rec.metrics["top1"] == raw["final"]["top1"] and rec.metrics["train_loss"] == raw["train_loss_last_epoch"]
    from records import curves
    losses = curves.train_loss_curve(rec)
    assert [x for x, _ in losses.points] == [1, 2] and losses.x_unit == "epoch"  # epochs done
    rates = curves.drop_rate_curves(rec)["dropout"].points
    per_epoch = rec.info["iters_per_epoch"]
    assert len(rates) == 2 * per_epoch
    assert {y for x, y in rates if x < 1} == {0.1} and {y for x, y in rates if x >= 1} == {0.0}


def test_a_classification_run_and_its_eval_read_back(pretrained, tmp_path):
    from cls_finetune.main import main as cls_main
    data = tmp_path / "transfer"
    write_transfer(data, train_per_class=4, test_per_class=2, size=32, seed=1)
    out = tmp_path / "cls"
    common = ["--config", REPO / "cls_configs/demo_cpu_linear_probe.yaml", *FAST, "--data_path", data,
              "--input_size", "32", "--epochs", "1", "--batch_size", "8"]
    run_ok(cls_main, [*common, "--finetune", pretrained / "weights.pth", "--output_dir", out, "--seed", "5"])
    rec = records.read_run(out)
    sha = file_sha256(pretrained / "weights.pth")
    assert records.is_finished(out) and records.started_from(out) == sha == rec.pretrain_sha256
    assert (rec.kind, rec.task, rec.dataset, rec.seed, rec.pretrain_seed) == ("cls_finetune", "classification",
                                                                               "imagefolder", 5, 3)
    assert rec.method == "early-constant dropout 0.1 until epoch 1" and rec.recipe == "linear_probe, 1 ep"
    assert rec.arch == records.read_run(pretrained).arch and rec.pretrain_recipe == "pretrained 2 ep at 32px"
    assert rec.metrics["top1"] == json.loads((out / records.METRICS).read_text())["final"]["top1"]
    # --eval writes its own record beside the run's, atomically, and is not a run of its own.
    run_ok(cls_main, [*common, "--finetune", out / "weights.pth", "--output_dir", out, "--eval"])
    evaluated = json.loads((out / records.EVAL_METRICS).read_text())
    assert evaluated["kind"] == "cls_finetune" and evaluated["val"]["n"] == 12
    assert [r.run_dir for r in records.discover([tmp_path])] == [out]


def _mm_tool(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"records_tools_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mm_pretrained(tmp_path_factory):
    from demo_data import write_imagenet
    from pretrain.main import main as pretrain_main
    root = tmp_path_factory.mktemp("records_mm")
    write_imagenet(root / "imagenet", train_per_class=4, val_per_class=1, size=64, seed=3)
    run_ok(pretrain_main, [*TINY, *VIT, *FAST, "--input_size", "64", "--data_path", root / "imagenet",
                           "--epochs", "1", "--output_dir", root / "run"])
    return root / "run" / "weights.pth"


def test_a_det_run_whose_evaluator_returned_nothing(tmp_path, mm_pretrained):
    coco = tmp_path / "coco"
    write_coco(coco, train_images=4, val_images=2, size=128, seed=5)
    ann = f"{coco}/annotations/instances_val2017.json"
    work = tmp_path / "det"
    options = [f"{k}.dataset.data_root={coco}/" for k in ("train_dataloader", "val_dataloader", "test_dataloader")]
    options += [f"val_evaluator.ann_file={ann}", f"test_evaluator.ann_file={ann}",
                f"model.backbone.init_cfg.checkpoint={mm_pretrained}", "model.backbone.model_kwargs.depth=2",
                "train_cfg.max_epochs=1", "train_cfg.val_interval=1", "randomness.seed=7",
                "model.test_cfg.rcnn.score_thr=1.01"]  # no detection scores above 1: CocoMetric returns {}
    config = REPO / "det_configs/demo/mask-rcnn_vit-demo_fpn_coco-demo.py"
    assert _mm_tool("train").main([str(config), "--work-dir", str(work), "--cfg-options", *options]) == 0
    raw = json.loads((work / records.METRICS).read_text())
    sha = file_sha256(mm_pretrained)
    assert raw["finished"] is True and raw["metrics"] == {} and raw["pretrain_sha256"] == sha
    assert len(read_jsonl(work / records.VAL_METRICS)) == 1
    assert records.is_finished(work) and records.started_from(work) == sha
    rec = records.read_run(work)
    assert (rec.kind, rec.status, rec.seed, rec.method) == ("mmdet", records.NO_METRICS, 7, "no dropout")
    assert "score_thr" in rec.note and rec.recipe == "mask-rcnn_vit-demo_fpn_coco-demo"
    assert rec.info["recipe"]["train_cfg"]["max_epochs"] == 1 and rec.info["data_root"] == f"{coco}/"
    from records import curves
    assert curves.train_loss_curve(rec).points  # mmengine's scalars.json


def test_a_seg_run_reads_back_with_its_configured_seed(tmp_path, mm_pretrained):
    ade = tmp_path / "ade"
    write_ade20k(ade, train_images=4, val_images=2, size=128, seed=6)
    work = tmp_path / "seg"
    options = [f"{k}.dataset.data_root={ade}" for k in ("train_dataloader", "val_dataloader", "test_dataloader")]
    options += [f"model.backbone.init_cfg.checkpoint={mm_pretrained}", "model.backbone.model_kwargs.depth=2",
                "train_cfg.max_iters=2", "train_cfg.val_interval=2", "default_hooks.checkpoint.interval=2",
                "train_dataloader.batch_size=2", "randomness.seed=11"]
    config = REPO / "seg_configs/demo/upernet_vit-demo_ade-demo.py"
    assert _mm_tool("train").main([str(config), "--work-dir", str(work), "--cfg-options", *options]) == 0
    rec = records.read_run(work)
    raw = json.loads((work / records.METRICS).read_text())
    assert (rec.kind, rec.status, rec.seed, rec.dataset) == ("mmseg", records.FINISHED, 11, "ade20k")
    assert rec.metrics == pytest.approx({k: raw["metrics"][k] for k in ("mIoU", "mAcc", "aAcc")})
    from records import curves
    assert curves.val_curve(rec, "mIoU").points == [(2.0, pytest.approx(raw["metrics"]["mIoU"]))]

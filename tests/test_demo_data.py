"""The generated data is in the real formats: COCO json read by pycocotools,
ADE20K pngs with ADE's label convention, ImageNet folders."""
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from demo_data import (PRETRAIN_CATEGORIES, category_name, write_ade20k, write_coco,
                       write_imagenet)
from demo_data.ade20k import label_map
from demo_data.scenes import multi_object_scene


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_coco(root, train_images=6, val_images=3, size=96, seed=11)
    return root


def test_coco_json_is_read_by_pycocotools_and_matches_the_masks(coco_root):
    for split, n in (("train", 6), ("val", 3)):
        coco = COCO(str(coco_root / f"annotations/instances_{split}2017.json"))
        assert len(coco.getImgIds()) == n
        assert [c["id"] for c in coco.loadCats(coco.getCatIds())] == list(range(1, 13))
        assert coco.loadCats(1)[0]["name"] == category_name(PRETRAIN_CATEGORIES[0])
        anns = coco.loadAnns(coco.getAnnIds())
        assert anns and len({a["id"] for a in anns}) == len(anns)
        for a in anns:
            info = coco.loadImgs(a["image_id"])[0]
            img = Image.open(coco_root / f"{split}2017" / info["file_name"])
            assert img.size == (info["width"], info["height"])
            m = coco.annToMask(a)
            ys, xs = np.nonzero(m)
            x, y, w, h = a["bbox"]
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert a["area"] == m.sum() and a["iscrowd"] == 0


def test_writers_are_deterministic_and_skip_finished_work(tmp_path, coco_root):
    again = tmp_path / "again"
    write_coco(again, train_images=6, val_images=3, size=96, seed=11)
    for name in ("instances_train2017.json", "instances_val2017.json"):
        assert (again / "annotations" / name).read_bytes() == (coco_root / "annotations" / name).read_bytes()
    stamp = (again / "annotations/instances_val2017.json").stat().st_mtime_ns
    write_coco(again, train_images=6, val_images=3, size=96, seed=11)
    assert (again / "annotations/instances_val2017.json").stat().st_mtime_ns == stamp


def test_ade20k_labels_follow_ades_convention(tmp_path):
    root = tmp_path / "ade"
    write_ade20k(root, train_images=3, val_images=2, size=96, seed=12)
    for split, short, n in (("training", "train", 3), ("validation", "val", 2)):
        stems = sorted(p.stem for p in (root / "images" / split).glob("*.jpg"))
        assert stems == [f"ADE_{short}_{i:08d}" for i in range(1, n + 1)]
        assert sorted(p.stem for p in (root / "annotations" / split).glob("*.png")) == stems
    png = Image.open(root / "annotations/validation/ADE_val_00000002.png")
    assert png.mode == "L"
    labels = np.asarray(png)
    # Recomputed independently from the same scene: 0 where no object, k + 1 for the k-th class.
    scene = multi_object_scene(12, "ade-validation", 1, list(PRETRAIN_CATEGORIES), 96, (1, 4), (0.12, 0.3))
    expected = np.zeros((96, 96), np.uint8)
    for obj in scene.objects:
        expected[obj.mask] = PRETRAIN_CATEGORIES.index(obj.category) + 1
    assert np.array_equal(labels, expected) and np.array_equal(labels, label_map(scene, PRETRAIN_CATEGORIES))
    assert labels.max() <= 12 and (labels == 0).any()
    assert json.loads((root / "classes.json").read_text()) == [category_name(c) for c in PRETRAIN_CATEGORIES]


def test_mmseg_finds_every_ade20k_pair(tmp_path):
    from mmseg.datasets import BaseSegDataset
    root = tmp_path / "ade"
    write_ade20k(root, train_images=2, val_images=3, size=64, seed=13)
    names = tuple(json.loads((root / "classes.json").read_text()))
    ds = BaseSegDataset(data_root=str(root), data_prefix=dict(img_path="images/validation",
                                                              seg_map_path="annotations/validation"),
                        img_suffix=".jpg", seg_map_suffix=".png", metainfo=dict(classes=names),
                        reduce_zero_label=True, pipeline=[], test_mode=True)
    assert len(ds) == 3 and all(d["seg_map_path"].endswith(".png") for d in ds.data_list)


def test_imagenet_layout(tmp_path):
    write_imagenet(tmp_path, train_per_class=2, val_per_class=1, size=32, seed=1)
    train = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert train == sorted(p.name for p in (tmp_path / "val").iterdir()) and len(train) == 12
    assert all(len(list((tmp_path / "train" / c).glob("*.JPEG"))) == 2 for c in train)
    mapping = (tmp_path / "LOC_synset_mapping.txt").read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in mapping] == train

"""The generated data is in the real formats: COCO json read by pycocotools,
ADE20K pngs with ADE's label convention (read by mmseg), ImageNet folders.

The expected contents are recomputed here from ``image_rng`` + ``render_scene``
(not through the writers' own helpers), so a wrong category order, label offset
or rng tag shows up as a mismatch."""
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from demo_data import (
    CATEGORIES,
    PRETRAIN_CATEGORIES,
    TRANSFER_CATEGORIES,
    category_name,
    image_rng,
    render_scene,
    write_ade20k,
    write_coco,
    write_imagenet,
    write_transfer,
)

# Not the identity order, so "position in the list" and "index into CATEGORIES" differ.
CATS = (14, 3, 9, 0, 7)
COCO_SPEC = dict(train_images=6, val_images=3, size=96, seed=11)
ADE_SPEC = dict(train_images=3, val_images=3, size=96, seed=12)


def rendered(seed, tag, index, categories, size, objects_per_image=(1, 4), scale=(0.12, 0.3)):
    """The scene a writer should have drawn: the object count, then the categories,
    then the rendering, all from image_rng(seed, tag, index)."""
    rng = image_rng(seed, tag, index)
    count = int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))
    cats = [categories[int(i)] for i in rng.integers(0, len(categories), size=count)]
    return render_scene(rng, size, cats, scale=scale)


def mtimes(root):
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_coco(root, CATS, **COCO_SPEC)
    return root


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ade")
    write_ade20k(root, CATS, **ADE_SPEC)
    return root


# ----------------------------------------------------------------------------- COCO

@pytest.mark.parametrize("split, n", [("train", 6), ("val", 3)])
def test_coco_json_is_read_by_pycocotools_and_matches_the_masks(coco_root, split, n):
    coco = COCO(str(coco_root / f"annotations/instances_{split}2017.json"))
    assert len(coco.getImgIds()) == n
    # Categories: 1-based, in the given order, named, supercategory = the shape.
    cats = coco.loadCats(coco.getCatIds())
    assert [c["id"] for c in cats] == list(range(1, len(CATS) + 1))
    assert [c["name"] for c in cats] == [category_name(c) for c in CATS]
    assert [c["supercategory"] for c in cats] == [CATEGORIES[c][0] for c in CATS]
    for info in coco.loadImgs(coco.getImgIds()):
        with Image.open(coco_root / f"{split}2017" / info["file_name"]) as img:
            assert img.format == "JPEG" and img.size == (info["width"], info["height"]) == (96, 96)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= n and len({a["id"] for a in anns}) == len(anns)
    for a in anns:
        info = coco.imgs[a["image_id"]]
        x, y, w, h = a["bbox"]
        assert all(isinstance(v, float) for v in a["bbox"]) and w > 0 and h > 0
        assert x >= 0 and y >= 0 and x + w <= info["width"] and y + h <= info["height"]
        m = coco.annToMask(a)
        ys, xs = np.nonzero(m)
        tight = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert np.abs(np.array([x, y, x + w, y + h]) - tight).max() <= 1
        assert abs(a["area"] - m.sum()) <= 0.03 * m.sum() and a["area"] >= 16
        assert a["iscrowd"] == 0 and 1 <= a["category_id"] <= len(CATS)


def test_coco_annotations_are_the_scenes_objects(coco_root):
    coco = COCO(str(coco_root / "annotations/instances_train2017.json"))
    checked = 0
    for index, image_id in enumerate(sorted(coco.getImgIds())):
        scene = rendered(11, "coco-train", index, CATS, 96)
        info = coco.imgs[image_id]
        with Image.open(coco_root / "train2017" / info["file_name"]) as img:
            pixels = np.asarray(img.convert("RGB"), np.float32)
        # The same picture, up to JPEG loss of the pixel noise (about 7; another scene is 30+).
        assert np.abs(pixels - scene.image).mean() < 12
        objects = [o for o in scene.objects if o.area >= 16]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        assert [a["category_id"] for a in anns] == [CATS.index(o.category) + 1 for o in objects]
        for a, o in zip(anns, objects):
            m = coco.annToMask(a).astype(bool)
            assert (m & o.mask).sum() >= 0.95 * (m | o.mask).sum()
            checked += 1
    assert checked >= 6


def test_coco_skips_tiny_visible_masks(tmp_path):
    # Objects of radius 1.5-3 px: some are below 16 visible pixels.
    spec = dict(train_images=0, val_images=4, size=48, seed=5, objects_per_image=(4, 4), scale=(0.03, 0.06))
    write_coco(tmp_path, CATS, **spec)
    coco = COCO(str(tmp_path / "annotations/instances_val2017.json"))
    areas = [o.area for i in range(4)
             for o in rendered(5, "coco-val", i, CATS, 48, spec["objects_per_image"], spec["scale"]).objects]
    assert min(areas) < 16 <= max(areas)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == sum(a >= 16 for a in areas) and min(a["area"] for a in anns) >= 16
    assert len(coco.getImgIds()) == 4 and coco.dataset["images"][0]["id"] == 1_000_001


def test_coco_writer_is_deterministic_and_skips_finished_work(tmp_path, coco_root):
    again = tmp_path / "again"
    write_coco(again, CATS, **COCO_SPEC)
    for name in ("instances_train2017.json", "instances_val2017.json"):
        assert (again / "annotations" / name).read_bytes() == (coco_root / "annotations" / name).read_bytes()
    before = mtimes(again)
    assert len(before) == 6 + 3 + 2 + 1  # images, json files, manifest
    write_coco(again, CATS, **COCO_SPEC)
    assert mtimes(again) == before
    # A different spec is written again, without leftovers of the earlier one.
    write_coco(again, CATS, **dict(COCO_SPEC, val_images=2))
    assert len(list((again / "val2017").iterdir())) == 2
    assert json.loads((again / "manifest.json").read_text())["val_images"] == 2


# ----------------------------------------------------------------------------- ADE20K

def test_ade20k_files_pair_up_and_hold_label_maps(ade_root):
    seen = set()
    for split, short in (("training", "train"), ("validation", "val")):
        stems = sorted(p.stem for p in (ade_root / "images" / split).glob("*.jpg"))
        assert stems == [f"ADE_{short}_{i:08d}" for i in range(1, 4)]
        assert sorted(p.stem for p in (ade_root / "annotations" / split).glob("*.png")) == stems
        for stem in stems:
            with Image.open(ade_root / "annotations" / split / f"{stem}.png") as png:
                assert png.mode == "L"
                labels = np.asarray(png)
            with Image.open(ade_root / "images" / split / f"{stem}.jpg") as img:
                assert img.size == png.size == (96, 96)
            assert labels.dtype == np.uint8
            assert set(np.unique(labels)) <= set(range(len(CATS) + 1))
            seen |= set(np.unique(labels).tolist())
    assert 0 in seen and len(seen) > 2  # background and several classes occur
    assert json.loads((ade_root / "classes.json").read_text()) == [category_name(c) for c in CATS]


@pytest.mark.parametrize("split, short", [("training", "train"), ("validation", "val")])
def test_ade20k_labels_follow_ades_convention(ade_root, split, short):
    for index in range(3):
        labels = np.asarray(Image.open(ade_root / f"annotations/{split}/ADE_{short}_{index + 1:08d}.png"))
        scene = rendered(12, f"ade-{split}", index, CATS, 96)
        # 0 where no object is visible, k + 1 for CATS[k], later objects on top.
        expected = np.zeros((96, 96), np.uint8)
        for obj in scene.objects:
            expected[obj.mask] = CATS.index(obj.category) + 1
        assert np.array_equal(labels, expected)


def test_ade20k_writer_skips_finished_work_and_drops_stale_files(tmp_path):
    root = tmp_path / "ade"
    spec = dict(train_images=3, val_images=2, size=32, seed=1)
    write_ade20k(root, **spec)
    before = mtimes(root)
    write_ade20k(root, **spec)
    assert mtimes(root) == before
    write_ade20k(root, **dict(spec, train_images=1))
    for folder in ("images/training", "annotations/training"):
        assert [p.stem for p in (root / folder).iterdir()] == ["ADE_train_00000001"]
    assert json.loads((root / "classes.json").read_text()) == [category_name(c) for c in PRETRAIN_CATEGORIES]


def test_interrupted_rewrite_is_not_taken_for_the_earlier_spec(tmp_path, monkeypatch):
    import demo_data.ade20k
    root = tmp_path / "ade"
    spec = dict(train_images=2, val_images=1, size=32, seed=2)
    write_ade20k(root, **spec)
    monkeypatch.setattr(demo_data.ade20k, "multi_object_scene", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_ade20k(root, **dict(spec, seed=3))
    assert not (root / "manifest.json").exists()


def test_mmseg_finds_every_ade20k_pair_and_reduces_label_zero(ade_root):
    pytest.importorskip("mmseg")
    from mmseg.datasets import BaseSegDataset
    from mmseg.datasets.transforms import LoadAnnotations
    names = tuple(json.loads((ade_root / "classes.json").read_text()))
    # As the seg configs build it (the stock ADE20KDataset only accepts ADE's own 150 names).
    ds = BaseSegDataset(data_root=str(ade_root), data_prefix=dict(img_path="images/validation",
                                                                  seg_map_path="annotations/validation"),
                        img_suffix=".jpg", seg_map_suffix=".png", metainfo=dict(classes=names),
                        reduce_zero_label=True, pipeline=[LoadAnnotations()], test_mode=True)
    stems = sorted(p.stem for p in (ade_root / "images/validation").glob("*.jpg"))
    assert len(ds) == len(stems) == 3 and ds.metainfo["classes"] == names
    for i, stem in enumerate(stems):
        info = ds.get_data_info(i)
        assert info["img_path"] == str(ade_root / "images/validation" / f"{stem}.jpg")
        assert info["seg_map_path"] == str(ade_root / "annotations/validation" / f"{stem}.png")
    # reduce_zero_label: "other" (0) becomes 255 = ignored, class k + 1 becomes k.
    png = np.asarray(Image.open(ds.get_data_info(0)["seg_map_path"])).astype(int)
    gt = ds[0]["gt_seg_map"]
    assert np.array_equal(gt, np.where(png == 0, 255, png - 1)) and (gt < len(names)).any()


# ----------------------------------------------------------------------------- ImageNet

def test_imagenet_layout(tmp_path):
    write_imagenet(tmp_path, train_per_class=2, val_per_class=1, size=32, seed=1)
    train = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert train == sorted(p.name for p in (tmp_path / "val").iterdir()) and len(train) == 12
    assert all(len(list((tmp_path / "train" / c).glob("*.JPEG"))) == 2 for c in train)
    mapping = (tmp_path / "LOC_synset_mapping.txt").read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in mapping] == train


def test_imagenet_rewrite_leaves_nothing_of_the_earlier_spec(tmp_path):
    write_imagenet(tmp_path, train_per_class=3, val_per_class=2, size=32, seed=1)
    write_imagenet(tmp_path, categories=PRETRAIN_CATEGORIES[:4], train_per_class=2, val_per_class=1,
                   size=32, seed=1)
    train = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert len(train) == 4 and sorted(p.name for p in (tmp_path / "val").iterdir()) == train
    assert all(len(list((tmp_path / "train" / c).iterdir())) == 2 for c in train)


def test_transfer_split_holds_only_classes_pretraining_never_saw(tmp_path):
    write_imagenet(tmp_path / "imagenet", train_per_class=1, val_per_class=1, size=32, seed=1)
    write_transfer(tmp_path / "transfer", train_per_class=2, test_per_class=1, size=32, seed=1)
    seen = {line.split(" ", 1)[1] for line in (tmp_path / "imagenet/LOC_synset_mapping.txt").read_text().splitlines()}
    shapes_seen = {CATEGORIES[c][0] for c in PRETRAIN_CATEGORIES}
    new = sorted(p.name for p in (tmp_path / "transfer/train").iterdir())
    assert new == sorted(p.name for p in (tmp_path / "transfer/test").iterdir()) and len(new) == 6
    assert not {n.replace("_", " ") for n in new} & seen
    assert not {CATEGORIES[c][0] for c in TRANSFER_CATEGORIES} & shapes_seen  # new shapes, not new mixes
    assert all(len(list((tmp_path / "transfer/train" / c).glob("*.jpg"))) == 2 for c in new)

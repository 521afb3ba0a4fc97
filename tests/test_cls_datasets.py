"""Every transfer dataset loads through torchvision's own class from a tiny
fixture written in that dataset's real on-disk format (tests/tv_fixtures.py),
and a dataset that is not there, or not intact, stops with one clear line."""
import pickle
import shutil

import pytest
import torch
import torchvision.datasets as tvd
from torchvision import transforms
from torchvision.datasets.utils import calculate_md5

from cls_finetune.datasets import DATASETS, MD5_CHECKED, build_splits
from cls_finetune.main import main
from helpers import REPO, assert_fails_with
from training.data import DataError
from tv_fixtures import WRITERS, palette

TF = transforms.Compose([transforms.Resize((24, 24)), transforms.ToTensor()])


# Caltech-101's protocol needs its 101 classes and 30 training images a class: that fixture has them.
SIZES = {name: {} if name == "caltech101" else dict(num_classes=3, train_per_class=4, test_per_class=2)
         for name in WRITERS}
WITH_VAL = ("flowers102", "dtd", "fgvc_aircraft", "voc2007")  # they train on train + val


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("tv")
    return {name: (root / name, write(root / name, **SIZES[name], seed=i))
            for i, (name, write) in enumerate(WRITERS.items())}


def primary_label(target) -> int:
    """The class an image was drawn for: its label, or (VOC) its first positive class."""
    return int(target) if not isinstance(target, torch.Tensor) or target.dim() == 0 else \
        int((target == 1).nonzero()[0])


def test_the_fixtures_cover_every_dataset():
    assert set(WRITERS) == set(DATASETS)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_loads_through_the_torchvision_class(name, fixtures):
    root, info = fixtures[name]
    splits = build_splits(name, root, TF, TF, check_md5=name not in MD5_CHECKED)
    assert splits.classes == info["classes"]
    # Flowers-102, DTD, Aircraft and VOC train on train + val (the val part known); the others on train.
    assert len(splits.train) == info["train"] + info.get("val", 0) if name in WITH_VAL \
        else len(splits.train) == info["train"]
    assert len(splits.test) == info["test"]
    assert splits.val_indices == (range(info["train"], info["train"] + info["val"]) if name in WITH_VAL else None)
    colours = torch.tensor(palette(info["num_classes"]), dtype=torch.float32) / 255
    for part in (splits.train, splits.test):
        labels = set()
        for i in range(len(part)):
            image, target = part[i]
            label = primary_label(target)
            assert isinstance(image, torch.Tensor) and image.shape == (3, 24, 24)
            labels.add(label)
            # The image is the one written for this label, upright and in RGB order.
            assert image[:, :4].mean() > 0.9, (name, i)
            torch.testing.assert_close(image[:, 10:].mean(dim=(1, 2)), colours[label], atol=0.03, rtol=0,
                                       msg=f"{name} sample {i}")
        assert labels == set(range(info["num_classes"]))  # every class in every split, labels from 0


@pytest.mark.parametrize("name", sorted(MD5_CHECKED))
def test_md5_mismatch_is_named_and_can_be_skipped(name, fixtures):
    root, _ = fixtures[name]
    with pytest.raises(DataError, match="--check_md5 false"):
        build_splits(name, root, TF, TF, check_md5=True)


def _sums_of(folder, files):
    return [[f, calculate_md5(folder / f)] for f, _ in files]


@pytest.mark.parametrize("name", sorted(MD5_CHECKED))
def test_md5_checked_classes_accept_files_whose_sums_match(name, fixtures, monkeypatch):
    """The plain torchvision classes (md5 verified) load the fixtures once their
    file lists carry the fixtures' own sums, as they do the official archives'."""
    root, info = fixtures[name]
    cls = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "stl10": tvd.STL10, "flowers102": tvd.Flowers102}[name]
    if name == "flowers102":  # the two .mat files carry sums (the image archive is not read)
        folder = root / "flowers-102"
        monkeypatch.setattr(cls, "_file_dict", {k: (f, calculate_md5(folder / f) if (folder / f).is_file() else None)
                                                for k, (f, _) in cls._file_dict.items()})
        summed = {folder / "imagelabels.mat", folder / "setid.mat"}
    else:
        folder = root / cls.base_folder
        monkeypatch.setattr(cls, "train_list", _sums_of(folder, cls.train_list))
        monkeypatch.setattr(cls, "test_list", _sums_of(folder, cls.test_list))
        summed = {folder / f for f, _ in cls.train_list + cls.test_list}
        if hasattr(cls, "meta"):
            monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": calculate_md5(folder / cls.meta["filename"])})
            summed.add(folder / cls.meta["filename"])
    verified = []
    real_check = tvd.utils.check_md5
    monkeypatch.setattr(tvd.utils, "check_md5", lambda *a, **k: verified.append(a[0]) or real_check(*a, **k))
    splits = build_splits(name, root, TF, TF, check_md5=True)
    assert len(splits.test) == info["test"] and splits.classes == info["classes"]
    assert sorted(map(str, verified)) == sorted(map(str, summed))  # every file verified, and only once


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_datasets_pickle_for_spawned_loader_workers(name, fixtures):
    root, info = fixtures[name]
    splits = build_splits(name, root, TF, TF, check_md5=False)
    copy = pickle.loads(pickle.dumps(splits.train))  # what spawn / forkserver workers receive
    assert len(copy) == len(splits.train)
    torch.testing.assert_close(copy[0][0], splits.train[0][0])


@pytest.mark.parametrize("name, damage, said", [
    ("food101", lambda r: (r / "food-101/meta/train.json").write_text('{"apple_pie": ['), "JSONDecodeError"),
    ("pets", lambda r: (r / "oxford-iiit-pet/annotations/test.txt").write_text("Abyssinian_1\n"), "ValueError"),
    ("cifar10", lambda r: (r / "cifar-10-batches-py/data_batch_3").write_bytes(b"\x80\x04"), "Error"),
    ("flowers102", lambda r: (r / "flowers-102/setid.mat").write_bytes(b"MATLAB 5.0 but not really"), "Error"),
])
def test_damaged_index_files_give_one_clear_error(name, damage, said, fixtures, tmp_path):
    root, _ = fixtures[name]
    copy = tmp_path / name
    shutil.copytree(root, copy)
    damage(copy)
    with pytest.raises(DataError) as err:
        build_splits(name, copy, TF, TF, check_md5=False)
    msg = str(err.value)
    assert f"torchvision cannot read {name}" in msg and said in msg and str(copy) in msg
    assert len(msg.splitlines()) == 1


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_missing_dataset_names_the_expected_files(name, tmp_path):
    with pytest.raises(DataError) as err:
        build_splits(name, tmp_path, TF, TF)
    msg = str(err.value)
    assert str(tmp_path) in msg and DATASETS[name].expected[0] in msg and "never downloads" in msg


def test_a_partly_copied_dataset_names_what_is_missing(fixtures, tmp_path):
    root, _ = fixtures["food101"]
    copy = tmp_path / "food"
    shutil.copytree(root, copy)
    (copy / "food-101/meta/test.json").unlink()
    with pytest.raises(DataError, match="missing food-101/meta/test.json"):
        build_splits("food101", copy, TF, TF)


def test_corrupt_image_is_named(fixtures, tmp_path):
    root, _ = fixtures["flowers102"]
    copy = tmp_path / "flowers"
    shutil.copytree(root, copy)
    victim = sorted((copy / "flowers-102/jpg").iterdir())[0]
    victim.write_bytes(b"not a jpeg")
    splits = build_splits("flowers102", copy, TF, TF, check_md5=False)
    with pytest.raises(DataError, match=f"corrupt or unreadable image {victim}"):
        for i in range(len(splits.train)):
            splits.train[i]
        for i in range(len(splits.test)):
            splits.test[i]


def test_missing_dataset_is_one_line_from_the_command(tmp_path, capsys):
    assert_fails_with(main, ["--model", "vit_tiny", "--finetune", "x.pth", "--dataset", "pets",
                             "--data_path", tmp_path, "--output_dir", tmp_path / "out", "--input_size", "32",
                             "--model_kwargs", "{depth: 1}"], capsys,
                      "pets not found", "oxford-iiit-pet/images/", "robots.ox.ac.uk")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_one_epoch_through_the_command(name, fixtures, learned_pretraining, tmp_path):
    import json
    root, info = fixtures[name]
    out = tmp_path / name
    argv = ["--config", REPO / "cls_configs/demo_cpu.yaml", "--dataset", name, "--data_path", root,
            "--check_md5", "false", "--finetune", learned_pretraining / "weights.pth", "--input_size", "32",
            "--batch_size", "64" if name == "caltech101" else "4", "--epochs", "1", "--num_workers", "0",
            "--tensorboard", "false", "--output_dir", out]
    assert main([str(a) for a in argv]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == name and metrics["final"]["n"] == info["test"]
    if name == "voc2007":  # multi-label: a sigmoid per class, the VOC metric
        assert "mAP" in metrics["final"] and "mean_per_class" not in metrics["final"]
    else:
        assert ("top5" in metrics["final"]) == (len(info["classes"]) > 5)
        assert 0 <= metrics["final"]["mean_per_class"] <= 100
    record = json.loads((out / "run.json").read_text())
    assert record["classes"] == info["classes"] and record["test_images"] == info["test"]


def test_imagefolder_needs_a_test_or_val_split(tmp_path):
    from demo_data import write_transfer
    write_transfer(tmp_path, train_per_class=2, test_per_class=1, size=32, seed=0)
    shutil.move(tmp_path / "test", tmp_path / "val")  # val/ is accepted in place of test/
    splits = build_splits("imagefolder", tmp_path, TF, TF)
    assert len(splits.test) == 6 and "train / val" in splits.description
    shutil.rmtree(tmp_path / "val")
    with pytest.raises(DataError, match="no test/ \\(or val/\\) folder"):
        build_splits("imagefolder", tmp_path, TF, TF)


# ---- the datasets torchvision's classes give no split for, and VOC's targets -----------------

def test_sun397_takes_partition_1_and_joins_nested_categories(fixtures, tmp_path):
    root, info = fixtures["sun397"]
    splits = build_splits("sun397", root, TF, TF)
    assert "apartment_building/outdoor" in splits.classes
    listed = (root / "SUN397/Training_01.txt").read_text().split()
    assert [str(p) for p in splits.train.base._image_files] == [str(root / "SUN397") + p for p in listed]
    copy = tmp_path / "sun"
    shutil.copytree(root, copy)
    with open(copy / "SUN397/Testing_01.txt", "a") as f:
        f.write("/a/abbey/sun_not_unpacked.jpg\n")
    with pytest.raises(DataError, match="1 listed images are not under .*sun_not_unpacked.jpg"):
        build_splits("sun397", copy, TF, TF)


def test_caltech101_split_is_30_a_class_fixed_and_without_background(fixtures):
    from cls_finetune.datasets import CALTECH101_SEED
    root, info = fixtures["caltech101"]
    first, again = (build_splits("caltech101", root, TF, TF) for _ in range(2))
    assert len(first.classes) == 101 and "BACKGROUND_Google" not in first.classes and CALTECH101_SEED == 0
    train, test = first.train.base.indices, first.test.base.indices
    assert train == again.train.base.indices and not set(train) & set(test)  # the same draw every time
    labels = [first.train.base.base.y[i] for i in train]
    assert all(labels.count(k) == 30 for k in range(101))
    assert len(train) + len(test) == len(first.train.base.base)


def test_caltech101_needs_its_101_classes_and_the_background_folder(fixtures, tmp_path):
    root, _ = fixtures["caltech101"]
    copy = tmp_path / "caltech"
    shutil.copytree(root, copy)
    shutil.rmtree(copy / "caltech101/101_ObjectCategories/category_100")
    with pytest.raises(DataError, match="has 100 class folders besides BACKGROUND_Google, Caltech-101 has 101"):
        build_splits("caltech101", copy, TF, TF)
    shutil.rmtree(copy / "caltech101/101_ObjectCategories/BACKGROUND_Google")
    with pytest.raises(DataError, match="no BACKGROUND_Google/ folder"):
        build_splits("caltech101", copy, TF, TF)


def test_voc2007_targets_are_multilabel_with_difficult_only_classes_ignored(fixtures):
    root, info = fixtures["voc2007"]
    splits = build_splits("voc2007", root, TF, TF)
    assert splits.multilabel and splits.classes[0] == "aeroplane" and len(splits.classes) == 20
    order = info["order"]["train"] + info["order"]["val"]
    for i, image_id in enumerate(order):
        _, target = splits.train[i]
        assert target.tolist() == info["targets"][image_id], image_id
    seen = {v for t in info["targets"].values() for v in t}
    assert seen == {1, 0, -1}  # the fixture has positives, negatives and difficult-only classes


def test_voc_root_without_2007_annotations_or_with_a_foreign_class(fixtures, tmp_path, capsys):
    root, _ = fixtures["voc2007"]
    copy = tmp_path / "voc"
    shutil.copytree(root, copy)
    first = sorted((copy / "VOCdevkit/VOC2007/Annotations").iterdir())[0]
    first.write_text(first.read_text().replace("<name>aeroplane</name>", "<name>unicorn</name>"))
    splits = build_splits("voc2007", copy, TF, TF)
    with pytest.raises(DataError, match="object 'unicorn' is not one of the 20 VOC classes"):
        splits.train[0]
    shutil.rmtree(copy / "VOCdevkit/VOC2007/Annotations")
    assert_fails_with(main, ["--model", "vit_tiny", "--finetune", "x.pth", "--dataset", "voc2007",
                             "--data_path", copy, "--output_dir", tmp_path / "out", "--input_size", "32",
                             "--model_kwargs", "{depth: 1}", "--mixup", "0", "--cutmix", "0", "--smoothing", "0"],
                      capsys, "voc2007 not found", "missing VOCdevkit/VOC2007/Annotations/", "VOCtest_06-Nov-2007.tar")


def test_multilabel_voc_refuses_mixup(tmp_path, capsys):
    assert_fails_with(main, ["--finetune", "x.pth", "--model", "vit_tiny", "--dataset", "voc2007",
                             "--data_path", tmp_path, "--mixup", "0.8"], capsys,
                      "--dataset voc2007 is multi-label", "--mixup 0")


def test_birdsnap_splits_by_the_published_test_list(fixtures):
    root, info = fixtures["birdsnap"]
    splits = build_splits("birdsnap", root, TF, TF)
    listed = (root / "birdsnap/test_images.txt").read_text().split()[1:]
    # the test split is the listed images that are on disk (one listed image never downloaded)
    assert len(splits.test) == info["test"] == len(listed) - 1
    test_files = {str(p) for p in splits.test.base._image_files}
    assert not test_files & {str(p) for p in splits.train.base._image_files}
    assert all(any(f.endswith(p) for f in test_files) for p in listed[:-1])

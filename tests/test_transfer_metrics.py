"""Each transfer dataset's own metric (cls_finetune/evaluation.py) against values
worked out by hand here, and the records rule that makes it a dataset's headline."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

import records
from cls_finetune.evaluation import (
    MaskedBCEWithLogits,
    mean_per_class_accuracy,
    multilabel_metrics,
    single_label_metrics,
    voc07_average_precision,
    voc07_map,
)


def test_mean_per_class_accuracy_by_hand():
    labels = [0, 0, 0, 1, 2, 2]
    predicted = [0, 0, 1, 1, 2, 0]
    # class 0: 2 of 3, class 1: 1 of 1, class 2: 1 of 2 -> (2/3 + 1 + 1/2) / 3; top-1 would be 4/6
    assert mean_per_class_accuracy(labels, predicted) == pytest.approx(100 * (2 / 3 + 1 + 1 / 2) / 3)
    logits = torch.nn.functional.one_hot(torch.tensor(predicted), 3).float()
    out = single_label_metrics(logits, torch.tensor(labels))
    assert out["top1"] == pytest.approx(100 * 4 / 6) and out["mean_per_class"] == pytest.approx(72.2222, abs=1e-3)
    assert "top5" not in out and out["n"] == 6


def test_voc07_11_point_ap_by_hand():
    # ranked by score: P, (difficult: skipped), N, P, N, P -> precision/recall at each rank of the four kept
    targets = [1, -1, 0, 1, 0, 1]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.1]
    # ranks: (p 1, r 1/3) (p 1/2, r 1/3) (p 2/3, r 2/3) (p 1/2, r 2/3) (p 3/5, r 1)
    # t = 0, .1, .2, .3 -> 1; t = .4, .5, .6 -> 2/3; t = .7, .8, .9, 1 -> 3/5
    expected = 100 * (4 * 1 + 3 * 2 / 3 + 4 * 3 / 5) / 11
    assert voc07_average_precision(targets, scores) == pytest.approx(expected)
    # scikit-learn's average precision is another definition (uninterpolated): 1/3 (1 + 2/3 + 3/5)
    keep = np.array(targets) >= 0
    sk = average_precision_score(np.array(targets)[keep] > 0, np.array(scores)[keep])
    assert sk == pytest.approx((1 + 2 / 3 + 3 / 5) / 3) and not math.isclose(100 * sk, expected, abs_tol=0.1)


def test_voc07_ap_has_no_free_point_at_recall_zero():
    # the top-scored image is a negative: the devkit's best precision at recall >= 0 is 1/2, not 1
    assert voc07_average_precision([0, 1], [0.9, 0.1]) == pytest.approx(50.0)


def test_voc07_map_leaves_out_classes_without_positives():
    targets = np.array([[1, 0, 0], [0, -1, 0], [1, 0, 0]])
    scores = np.array([[0.9, 0.2, 0.1], [0.1, 0.8, 0.3], [0.5, 0.4, 0.2]])
    assert math.isnan(voc07_average_precision(targets[:, 1], scores[:, 1]))
    assert voc07_map(targets, scores) == pytest.approx(100.0)


def test_masked_bce_ignores_difficult_entries_and_multilabel_top1():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    targets = torch.tensor([[1.0, -1.0, 0.0]])
    by_hand = (math.log(2) + math.log(1 + math.exp(-1.0))) / 2  # -log sigmoid(0), -log(1 - sigmoid(-1))
    assert MaskedBCEWithLogits()(logits, targets).item() == pytest.approx(by_hand, rel=1e-6)
    out = multilabel_metrics(torch.tensor([[0.1, 0.9], [0.8, 0.3]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert out["top1"] == pytest.approx(50.0) and out["n"] == 2


@pytest.mark.parametrize("dataset, headline", [
    ("pets", ["mean_per_class"]), ("fgvc_aircraft", ["mean_per_class"]), ("caltech101", ["mean_per_class"]),
    ("flowers102", ["mean_per_class"]), ("voc2007", ["mAP"]), ("cifar10", ["top1"]), ("sun397", ["top1"]),
    ("imagefolder", ["top1"])])
def test_each_dataset_has_its_own_headline_and_top1_stays_recorded(dataset, headline):
    assert [m.id for m in records.headline_metrics("cls_finetune", dataset)] == headline
    final = {"top1": 60.0, "top5": 90.0, "mean_per_class": 55.0, "mAP": 0.7 if dataset == "voc2007" else None}
    values = records.extract_metrics("cls_finetune", {"final": final})
    assert values["top1"] == 60.0 and values["mean_per_class"] == 55.0 and ("mAP" in values) == (dataset == "voc2007")
    assert [m.id for m in records.headline_metrics("pretrain", dataset)] == ["top1", "train_loss"]

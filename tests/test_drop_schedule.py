"""The drop schedule, checked at every iteration against numpy arrays built here."""
import math

import numpy as np
import pytest

from backbones import DropPlan, DropSchedule

# (epochs, iters_per_epoch, cutoff_epoch)
CONFIGS = [(10, 7, 3), (5, 4, 5), (6, 1, 1), (4, 3, 0), (3, 5, 2.4), (8, 2, 7)]
RATES = [0.1, 0.35]


def reference(p, epochs, ipe, mode, shape, cutoff):
    """The whole per-iteration array, the paper's way (numpy), for comparison only."""
    total = int(round(epochs * ipe))
    n = int(round(cutoff * ipe))
    if mode == "standard" and shape == "constant":
        return np.full(total, p)
    if mode == "standard" and shape == "curriculum":
        return np.linspace(0, p, total)
    if mode == "early":
        if shape == "constant":
            head = np.full(n, p)
        elif shape == "linear":
            head = np.linspace(p, 0, n)
        elif shape == "cosine":
            steps = np.arange(n)
            head = p * 0.5 * (1 + np.cos(np.pi * steps / max(n - 1, 1)))
        return np.concatenate([head, np.zeros(total - n)])
    if mode == "late":
        return np.concatenate([np.zeros(n), np.full(total - n, p)])
    raise AssertionError(mode)


@pytest.mark.parametrize("mode,shape", [
    ("standard", "constant"), ("standard", "curriculum"), ("early", "constant"),
    ("early", "linear"), ("early", "cosine"), ("late", "constant")])
@pytest.mark.parametrize("epochs,ipe,cutoff", CONFIGS)
@pytest.mark.parametrize("p", RATES)
def test_every_iteration_matches_reference(mode, shape, epochs, ipe, cutoff, p):
    sched = DropSchedule(p, epochs=epochs, iters_per_epoch=ipe, mode=mode, shape=shape,
                         cutoff_epoch=cutoff)
    ref = reference(p, epochs, ipe, mode, shape, cutoff)
    got = np.array([sched(i) for i in range(len(ref))])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    # Past the end the last value holds.
    assert sched(len(ref) + 5) == pytest.approx(ref[-1])


def test_linear_end_points_and_cutoff_boundary():
    s = DropSchedule(0.2, epochs=10, iters_per_epoch=5, mode="early", shape="linear", cutoff_epoch=4)
    n = 20
    assert s(0) == 0.2                      # first iteration: full rate
    assert s(n - 1) == 0.0                  # last iteration of the window: exactly 0
    assert s(n // 2) == pytest.approx(0.2 * (1 - 10 / 19))
    assert s(n) == 0.0 and s(n + 1) == 0.0  # after the cutoff

    c = DropSchedule(0.2, epochs=10, iters_per_epoch=5, mode="early", shape="constant", cutoff_epoch=4)
    assert c(n - 1) == 0.2 and c(n) == 0.0
    late = DropSchedule(0.2, epochs=10, iters_per_epoch=5, mode="late", cutoff_epoch=4)
    assert late(n - 1) == 0.0 and late(n) == 0.2
    # A one-iteration window keeps p at that iteration (numpy.linspace(p, 0, 1) == [p]).
    one = DropSchedule(0.3, epochs=2, iters_per_epoch=1, mode="early", shape="linear", cutoff_epoch=1)
    assert one(0) == 0.3 and one(1) == 0.0


def test_peak_reports_the_largest_requested_rate():
    def mk(mode, cutoff):
        return DropSchedule(0.1, epochs=4, iters_per_epoch=2, mode=mode, cutoff_epoch=cutoff)

    assert mk("early", 2).peak == 0.1
    assert mk("early", 0).peak == 0.0       # window of zero length
    assert mk("late", 4).peak == 0.0        # starts at the very end
    assert mk("late", 0).peak == 0.1


def test_query_is_constant_time_and_stores_no_array():
    s = DropSchedule(0.1, epochs=10**6, iters_per_epoch=10**4, mode="early", shape="cosine",
                     cutoff_epoch=10**5)
    assert s(5 * 10**8) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 5 * 10**8 / (10**9 - 1))))
    assert all(not isinstance(v, (list, np.ndarray)) for v in vars(s).values())


@pytest.mark.parametrize("kwargs,match", [
    (dict(rate=1.0), r"rate=1.0 is outside \[0, 1\)"),
    (dict(rate=-0.1), r"outside \[0, 1\)"),
    (dict(rate=float("nan")), r"outside \[0, 1\)"),
    (dict(cutoff_epoch=11, mode="early"), r"cutoff_epoch=11 is past the end of training \(epochs=10\)"),
    (dict(cutoff_epoch=-1, mode="late"), r"cutoff_epoch=-1 is negative"),
    (dict(mode="middle"), r"drop_mode='middle' is unknown"),
    (dict(mode="late", shape="linear"), r"drop_schedule='linear' does not go with drop_mode='late'"),
    (dict(shape="zigzag"), r"drop_schedule='zigzag' does not go with"),
    (dict(epochs=0), r"epochs=0 must be positive"),
    (dict(iters_per_epoch=0), r"iters_per_epoch=0 must be a positive integer"),
])
def test_bad_schedules_fail_naming_the_parameter(kwargs, match):
    args = dict(rate=0.1, epochs=10, iters_per_epoch=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DropSchedule(**args)


def test_negative_iteration_is_rejected():
    with pytest.raises(ValueError, match="iteration=-1"):
        DropSchedule(0.1, epochs=1, iters_per_epoch=1)(-1)


def test_plan_drives_both_kinds_and_refuses_both_nonzero():
    plan = DropPlan.build(drop_path=0.1, drop_mode="late", cutoff_epoch=2, epochs=4, iters_per_epoch=3)
    assert [plan(i) for i in (0, 5, 6, 11)] == [(0.0, 0.0), (0.0, 0.0), (0.0, 0.1), (0.0, 0.1)]
    assert plan.describe() == "late-constant drop_path 0.1 from epoch 2"
    with pytest.raises(ValueError, match="dropout=0.1 and drop_path=0.1 are both non-zero"):
        DropPlan.build(dropout=0.1, drop_path=0.1, epochs=4, iters_per_epoch=3)
    with pytest.raises(ValueError, match=r"dropout=1.5 is outside"):
        DropPlan.build(dropout=1.5, epochs=4, iters_per_epoch=3)
    assert DropPlan.build(epochs=1, iters_per_epoch=1).describe() == "no dropout"


def test_a_plan_knows_whether_its_rate_changes_every_update():
    # torch.compile keeps the drop sites eager exactly then (training/run.py)
    common = dict(drop_mode="early", cutoff_epoch=2, epochs=4, iters_per_epoch=3)
    assert DropPlan.build(dropout=0.1, drop_schedule="linear", **common).changes_every_update
    assert DropPlan.build(drop_path=0.1, drop_schedule="cosine", **common).changes_every_update
    assert not DropPlan.build(dropout=0.1, drop_schedule="constant", **common).changes_every_update
    assert not DropPlan.build(drop_schedule="linear", **common).changes_every_update

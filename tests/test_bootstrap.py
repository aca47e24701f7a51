"""Block bootstrap by break event: groups, the weighted metrics against scikit-learn, and
intervals with known answers."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from lstm_rare_event.alarms.bootstrap import (
    bootstrap_metrics,
    event_groups,
    replicate_counts,
    weighted_metrics,
)

DAY0 = np.datetime64("2024-03-01T00:00:00", "s")
NAT = np.datetime64("NaT", "s")


def test_event_groups_keep_a_breaks_windows_together_and_block_normals_by_day():
    hours = np.timedelta64(1, "h")
    end_time = DAY0 + np.array([1, 2, 23, 24, 25, 30, 47, 49]) * hours
    y = np.array([0, 1, 1, 1, 0, 0, 1, 0])
    break_a, break_b = DAY0 + 24 * hours, DAY0 + 48 * hours
    # Break A's windows straddle midnight; they stay one group, apart from that day's normals.
    event_time = np.array([NAT, break_a, break_a, break_a, NAT, NAT, break_b, NAT])
    groups = event_groups(y, event_time, end_time)
    assert groups[1] == groups[2] == groups[3]
    assert len({groups[1], groups[6]}) == 2
    assert groups[4] == groups[5] and len({groups[0], groups[4], groups[7]}) == 3
    assert set(groups[y == 1]).isdisjoint(groups[y == 0])
    assert sorted(set(groups)) == list(range(5))


def test_event_groups_need_the_break_of_every_positive_window():
    with pytest.raises(ValueError, match="event_time"):
        event_groups([1], [NAT], [DAY0])


def test_weighted_metrics_equal_sklearn_on_the_repeated_windows():
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.1
    score = np.round(rng.random(300) + y * 0.3, 1)  # rounded: many ties
    weights = rng.integers(0, 3, size=(5, 300))
    got = weighted_metrics(y, score, weights)
    for r, w in enumerate(weights):
        yy, ss = np.repeat(y, w), np.repeat(score, w)
        assert got["roc_auc"][r] == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)
        assert got["pr_auc"][r] == pytest.approx(average_precision_score(yy, ss), abs=1e-12)


def test_replicates_draw_as_many_breaks_and_normal_blocks_as_there_are():
    is_positive = np.array([True, True, False, False, False])
    counts = replicate_counts(is_positive, 50, np.random.default_rng(0))
    assert (counts[:, :2].sum(axis=1) == 2).all() and (counts[:, 2:].sum(axis=1) == 3).all()


def data(n_breaks=20, per_break=3, n_days=10, per_day=300, seed=0):
    """Labels and block ids: breaks of ``per_break`` windows, then days of ``per_day`` normal
    windows; and a random generator for the scores."""
    y = np.r_[np.ones(n_breaks * per_break, int), np.zeros(n_days * per_day, int)]
    groups = np.r_[np.repeat(np.arange(n_breaks), per_break), n_breaks + np.repeat(np.arange(n_days), per_day)]
    rng = np.random.default_rng(seed)
    return y, groups, rng


def test_perfect_detector_has_interval_one_and_random_one_contains_a_half():
    y, groups, rng = data()
    scores = {"perfect": y + rng.random(len(y)) * 0.5, "random": rng.random(len(y))}
    result = bootstrap_metrics(y, scores, groups, n=300, seed=1)
    perfect = result["detectors"]["perfect"]
    assert perfect["roc_auc"] == {"estimate": 1.0, "low": 1.0, "high": 1.0}
    assert perfect["pr_auc"]["low"] == 1.0
    random = result["detectors"]["random"]["roc_auc"]
    assert random["low"] < 0.5 < random["high"]
    assert random["estimate"] == pytest.approx(roc_auc_score(y, scores["random"]))
    (diff,) = result["differences"]
    assert (diff["a"], diff["b"]) == ("perfect", "random")
    assert diff["roc_auc"]["excludes_zero"] and diff["roc_auc"]["low"] > 0
    assert result["blocks"] == {"breaks": 20, "normal_blocks": 10}


def test_a_detector_against_itself_differs_by_exactly_zero():
    y, groups, rng = data()
    score = rng.random(len(y)) + y * 0.2
    result = bootstrap_metrics(y, {"a": score, "same": score.copy()}, groups, n=200)
    for metric in ("roc_auc", "pr_auc"):
        assert result["differences"][0][metric] == {"estimate": 0.0, "low": 0.0, "high": 0.0, "excludes_zero": False}


def test_the_same_seed_gives_the_same_result_and_another_seed_does_not():
    y, groups, rng = data()
    scores = {"a": rng.random(len(y)) + y * 0.2, "b": rng.random(len(y))}
    first = bootstrap_metrics(y, scores, groups, n=200, seed=5)
    assert bootstrap_metrics(y, scores, groups, n=200, seed=5) == first
    assert bootstrap_metrics(y, scores, groups, n=200, seed=6) != first


def test_block_intervals_are_wider_than_window_intervals_when_a_breaks_windows_agree():
    # Each break's windows share one score: resampling windows alone would count them as
    # independent evidence and understate the uncertainty.
    y, groups, rng = data(per_break=10)
    score = np.where(y == 1, rng.random(20)[np.minimum(groups, 19)] + 0.3, rng.random(len(y)))
    by_block = bootstrap_metrics(y, {"s": score}, groups, n=400)["detectors"]["s"]["roc_auc"]
    by_window = bootstrap_metrics(y, {"s": score}, np.arange(len(y)), n=400)["detectors"]["s"]["roc_auc"]
    assert by_block["high"] - by_block["low"] > 1.5 * (by_window["high"] - by_window["low"])


def test_refuses_mixed_groups_one_class_and_unknown_metrics():
    y, groups, rng = data()
    score = {"s": rng.random(len(y))}
    with pytest.raises(ValueError, match="mixes"):
        bootstrap_metrics(y, score, np.zeros(len(y), int))
    with pytest.raises(ValueError, match="both"):
        bootstrap_metrics(np.zeros(len(y), int), score, groups)
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_metrics(y, score, groups, metrics=("f1",))


def test_a_thousand_replicates_of_four_detectors_on_3600_windows_cover_every_pair():
    # The size of a real comparison; how fast it runs is measured in the benchmarks, not here.
    y, groups, rng = data(n_breaks=25, per_break=2, n_days=6, per_day=592)
    scores = {name: rng.random(len(y)) + y * k for k, name in enumerate(["a", "b", "c", "d"])}
    result = bootstrap_metrics(y, scores, groups, n=1000)
    assert result["replicates"] == 1000 and result["blocks"] == {"breaks": 25, "normal_blocks": 6}
    assert list(result["detectors"]) == ["a", "b", "c", "d"]
    assert [(d["a"], d["b"]) for d in result["differences"]] == [
        ("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]
    for name, score in scores.items():
        roc = result["detectors"][name]["roc_auc"]
        assert roc["estimate"] == pytest.approx(roc_auc_score(y, score))
        assert roc["low"] <= roc["estimate"] <= roc["high"]

"""Threshold rules on hand-made error arrays with known answers."""

import numpy as np
import pytest
from sklearn.metrics import fbeta_score, precision_score, recall_score

from lstm_rare_event.errors import UserError
from lstm_rare_event.alarms.thresholds import (
    RULES,
    alarms_per_day,
    candidate_thresholds,
    choose_threshold,
    flag,
    precision_recall_by_threshold,
    resolve_params,
)

# Six windows: positives at errors 3, 5 and 6.
ERRORS = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
LABELS = np.array([0, 0, 1, 0, 1, 1])


def test_flag_is_strictly_above():
    assert flag(np.array([0.2, 0.3, 0.31]), 0.3).tolist() == [False, False, True]


def test_candidates_cut_midway_from_all_flagged_to_none():
    cuts = candidate_thresholds(np.array([3.0, 1.0, 2.0, 2.0]))
    assert cuts.tolist() == [0.5, 1.5, 2.5, 3.0]
    assert flag(np.array([3.0, 1.0, 2.0]), cuts[0]).all() and not flag(np.array([3.0, 1.0, 2.0]), cuts[-1]).any()


def test_value_rule_is_the_given_value_and_the_recipe_default():
    assert choose_threshold("value", ERRORS, LABELS, 2, value=0.7) == 0.7
    assert choose_threshold("value", ERRORS, LABELS, 2) == 0.3


def test_max_f1():
    # F1 by threshold: 0.5 -> 6/9, 1.5 -> 6/8, 2.5 -> 6/7 (3 TP, 1 FP), 3.5 -> 4/5, 4.5 -> 4/5, 5.5 -> 1/2
    assert choose_threshold("max-f", ERRORS, LABELS, 2) == 2.5


def test_max_f_beta_half_favours_precision_and_breaks_ties_upwards():
    # F0.5 is 2.5/2.75 at both 3.5 and 4.5 (the same two true alarms, no false one): take 4.5
    assert choose_threshold("max-f", ERRORS, LABELS, 2, beta=0.5) == 4.5


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_max_f_is_the_best_fbeta_by_sklearn(beta):
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.1).astype(int)
    errors = rng.gamma(2.0, 1.0, 400) + 1.5 * labels
    best = choose_threshold("max-f", errors, labels, 2, beta=beta)
    score = fbeta_score(labels, flag(errors, best), beta=beta)
    others = [fbeta_score(labels, flag(errors, t), beta=beta, zero_division=0) for t in candidate_thresholds(errors)]
    assert score == pytest.approx(max(others))


@pytest.mark.parametrize("target, expected", [(0.5, 4.5), (1.0, 2.5), (0.34, 4.5), (0.33, 5.5)])
def test_recall_rule_highest_threshold_reaching_target(target, expected):
    # positives 6, 5, 3: two of three (0.67) need a threshold below 5; all three below 3
    threshold = choose_threshold("recall", ERRORS, LABELS, 2, target=target)
    assert threshold == expected
    assert recall_score(LABELS, flag(ERRORS, threshold)) >= target


def test_median_positive():
    assert choose_threshold("median-positive", ERRORS, LABELS, 2) == 5.0
    assert choose_threshold("median-positive", np.append(ERRORS, 10.0), np.append(LABELS, 1), 2) == 5.5


# Eight normal windows at 1..8 and a positive at 100; 360-minute rows: 4 windows per day,
# so the eight normal windows are two days.
APD_ERRORS = np.array([5.0, 1.0, 8.0, 3.0, 100.0, 2.0, 7.0, 4.0, 6.0])
APD_LABELS = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0])


@pytest.mark.parametrize("target, expected", [
    (1.0, 6.5),  # 2 alarms allowed in two days: 7 and 8
    (0.5, 7.5),  # 1 alarm: 8
    (0.0, 8.0),  # none: the largest normal error, not flagged (strict)
    (4.0, 0.5),  # all 8 allowed: below the smallest
    (100.0, 0.5),  # more than all: still all
])
def test_alarms_per_day_known_answers(target, expected):
    threshold = choose_threshold("alarms-per-day", APD_ERRORS, APD_LABELS, 360, target=target)
    assert threshold == expected


def test_alarms_per_day_exact_rate_is_not_rounded_down():
    # 720 normal windows at 2 minutes are one day: one alarm allowed, the largest error
    errors = np.arange(1.0, 721.0)
    assert alarms_per_day(errors, np.zeros(720, dtype=int), 2, target=1.0) == 719.5


def test_alarms_per_day_stays_within_target_on_validation():
    rng = np.random.default_rng(0)
    labels = (rng.random(5000) < 0.01).astype(int)
    errors = rng.lognormal(size=5000)
    for target in (1.0, 5.0, 20.0):
        threshold = choose_threshold("alarms-per-day", errors, labels, 2, target=target)
        false_alarms = np.sum(flag(errors, threshold) & (labels == 0))
        per_day = false_alarms / (5000 * 2 / 1440)
        assert per_day <= target
        # and it is the lowest such threshold: one more normal window would break the budget
        allowed = int(target * np.sum(labels == 0) / 720)
        assert false_alarms == allowed


def test_ties_never_exceed_the_alarm_budget():
    errors = np.array([1.0, 2.0, 2.0, 2.0])
    threshold = alarms_per_day(errors, np.zeros(4, dtype=int), 360, target=1.0)  # 1 of 4 allowed
    assert np.sum(flag(errors, threshold)) <= 1


@pytest.mark.parametrize("rule", [name for name, spec in RULES.items() if spec.needs_positives])
def test_label_rules_without_positives_name_a_rule_that_works(rule):
    labels = np.zeros(6, dtype=int)
    with pytest.raises(UserError, match="alarms-per-day or --rule value"):
        choose_threshold(rule, ERRORS, labels, 2)
    assert choose_threshold("alarms-per-day", ERRORS, labels, 2) == 6.0
    assert choose_threshold("value", ERRORS, labels, 2) == 0.3


def test_alarms_per_day_without_normal_windows_names_value():
    with pytest.raises(UserError, match="--rule value"):
        choose_threshold("alarms-per-day", ERRORS, np.ones(6, dtype=int), 2)


@pytest.mark.parametrize("rule, params, message", [
    ("nope", {}, "choose one of"),
    ("value", {"beta": 2.0}, "--beta does not apply to --rule value"),
    ("median-positive", {"target": 0.5}, "it takes no parameter"),
    ("value", {"value": -0.1}, "--value -0.1"),
    ("value", {"value": float("inf")}, "--value inf"),
    ("max-f", {"beta": 0.0}, "--beta 0"),
    ("recall", {"target": 1.5}, "a recall in"),
    ("recall", {"target": 0.0}, "a recall in"),
    ("alarms-per-day", {"target": -1.0}, ">= 0"),
])
def test_bad_parameters(rule, params, message):
    with pytest.raises(UserError, match=message):
        resolve_params(rule, **params)


def test_defaults_are_filled_in():
    assert resolve_params("recall") == {"target": 0.5}
    assert resolve_params("alarms-per-day") == {"target": 1.0}
    assert resolve_params("max-f", beta=2) == {"beta": 2.0}
    assert resolve_params("median-positive") == {}


def test_no_windows_is_a_user_error():
    with pytest.raises(UserError, match="no validation windows"):
        choose_threshold("value", np.array([]), np.array([]), 2)


def test_precision_recall_by_threshold_matches_sklearn():
    cuts, precision, recall = precision_recall_by_threshold(ERRORS, LABELS)
    for t, p, r in zip(cuts, precision, recall):
        flags = flag(ERRORS, t)
        assert r == recall_score(LABELS, flags)
        if flags.any():
            assert p == precision_score(LABELS, flags)
        else:
            assert np.isnan(p)

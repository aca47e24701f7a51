"""Threshold rules on hand-made score arrays with known answers."""

import numpy as np
import pytest
from sklearn.metrics import fbeta_score, precision_score, recall_score

from lstm_rare_event.alarms.episodes import episode_metrics
from lstm_rare_event.alarms.metrics import candidate_thresholds
from lstm_rare_event.alarms.rule import flag
from lstm_rare_event.alarms.thresholds import (
    RULES,
    Scored,
    alarms_per_day,
    choose_threshold,
    extrapolates,
    fitted_tail,
    precision_recall_by_threshold,
    resolve_params,
)
from lstm_rare_event.errors import UserError

START = np.datetime64("2024-03-01T00:00:00", "s")


def scored(scores, labels, interval=2.0, merge=30.0, horizon=None, breaks=None):
    """Validation scores in time order, window k ending at k intervals. Each positive window
    is followed by its own break one interval after it ends (``breaks`` overrides), and the
    horizon is one interval: a positive window's episode warns of its break, a normal one's not."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    step = np.timedelta64(int(interval * 60), "s")
    end_time = START + np.arange(len(scores)) * step
    if breaks is None:
        breaks = end_time[labels == 1] + step
    return Scored(scores, labels, end_time, np.asarray(breaks, dtype="datetime64[s]"), float(interval),
                  float(merge), float(interval if horizon is None else horizon))


def false_episodes_per_day(s: Scored, threshold: float) -> float:
    return episode_metrics(s.end_time, flag(s.scores, threshold), s.break_times, s.interval_minutes,
                           s.merge_minutes, s.horizon_minutes)["false_episodes_per_day"]


# Six windows: positives at scores 3, 5 and 6.
ERRORS = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
LABELS = np.array([0, 0, 1, 0, 1, 1])
SIX = scored(ERRORS, LABELS)


def test_flag_is_strictly_above():
    assert flag(np.array([0.2, 0.3, 0.31]), 0.3).tolist() == [False, False, True]


def test_candidates_cut_midway_from_all_flagged_to_none():
    cuts = candidate_thresholds(np.array([3.0, 1.0, 2.0, 2.0]))
    assert cuts.tolist() == [0.5, 1.5, 2.5, 3.0]
    assert flag(np.array([3.0, 1.0, 2.0]), cuts[0]).all() and not flag(np.array([3.0, 1.0, 2.0]), cuts[-1]).any()


def test_value_rule_is_the_given_value_and_the_recipe_default():
    assert choose_threshold("value", SIX, value=0.7) == 0.7
    assert choose_threshold("value", SIX) == 0.3


def test_max_f1():
    # F1 by threshold: 0.5 -> 6/9, 1.5 -> 6/8, 2.5 -> 6/7 (3 TP, 1 FP), 3.5 -> 4/5, 4.5 -> 4/5, 5.5 -> 1/2
    assert choose_threshold("max-f", SIX) == 2.5


def test_max_f_beta_half_favours_precision_and_breaks_ties_upwards():
    # F0.5 is 2.5/2.75 at both 3.5 and 4.5 (the same two true alarms, no false one): take 4.5
    assert choose_threshold("max-f", SIX, beta=0.5) == 4.5


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_max_f_is_the_best_fbeta_by_sklearn(beta):
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.1).astype(int)
    errors = rng.gamma(2.0, 1.0, 400) + 1.5 * labels
    best = choose_threshold("max-f", scored(errors, labels), beta=beta)
    score = fbeta_score(labels, flag(errors, best), beta=beta)
    others = [fbeta_score(labels, flag(errors, t), beta=beta, zero_division=0) for t in candidate_thresholds(errors)]
    assert score == pytest.approx(max(others))


@pytest.mark.parametrize("target, expected", [(0.5, 4.5), (1.0, 2.5), (0.34, 4.5), (0.33, 5.5)])
def test_recall_rule_highest_threshold_reaching_target(target, expected):
    # positives 6, 5, 3: two of three (0.67) need a threshold below 5; all three below 3
    threshold = choose_threshold("recall", SIX, target=target)
    assert threshold == expected
    assert recall_score(LABELS, flag(ERRORS, threshold)) >= target


def test_median_positive():
    assert choose_threshold("median-positive", SIX) == 5.0
    assert choose_threshold("median-positive", scored(np.append(ERRORS, 10.0), np.append(LABELS, 1))) == 5.5


# Eight normal windows at 1..8 and a positive at 100, 360 minutes apart (window k ends at 6k
# hours): 9 windows are 9 x 360 minutes = 2.25 days. The positive (row 4, 24 h) precedes a
# break at 30 h; with the 360-minute horizon only an episode starting in [24 h, 30 h) warns
# of it, so only the positive's. Windows 6 h apart never merge under the 30-minute gap, so
# each flagged normal window is one false episode.
APD_ERRORS = np.array([5.0, 1.0, 8.0, 3.0, 100.0, 2.0, 7.0, 4.0, 6.0])
APD_LABELS = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0])


@pytest.mark.parametrize("target, merge, expected", [
    (1.0, 30, 6.5),  # 2.25 false episodes allowed, so 2: the windows at 7 and 8 (and the true 100)
    (0.5, 30, 7.5),  # 1.125 allowed, so 1: the window at 8
    (0.0, 30, 54.0),  # none: only the true episode, cut midway between 8 and 100
    (4.0, 30, 0.5),  # 9 allowed, 8 there are: all flagged, below the smallest
    (100.0, 30, 0.5),  # more than all: still all
    # Merged 12 h apart (gap 720 < 721 minutes), the flagged windows at 8 (12 h) and 100 (24 h)
    # are one episode starting at 12 h, too early to warn: one false episode, within 1.125.
    # Every lower cut only adds windows to that one episode, so all can be flagged.
    (0.5, 721, 0.5),
])
def test_alarms_per_day_known_answers(target, merge, expected):
    s = scored(APD_ERRORS, APD_LABELS, interval=360, merge=merge)
    assert choose_threshold("alarms-per-day", s, target=target) == expected


def test_alarms_per_day_counts_a_run_of_flagged_windows_as_one_episode():
    # 720 windows at 2 minutes are one day, scores rising in time: under the 30-minute merge the
    # flagged tail is one episode however long, so one false episode a day allows all of them
    s = scored(np.arange(1.0, 721.0), np.zeros(720, dtype=int), interval=2)
    assert alarms_per_day(s, target=1.0) == 0.5
    # 0.99 a day: the one day of validation allows no episode, so the budget is extrapolated from
    # the tail instead of choosing the maximum: about 0.99 flagged windows a day, into the top scores
    assert extrapolates(s, 0.99) and not extrapolates(s, 1.0)
    assert 700 < alarms_per_day(s, target=0.99) < 720.0


def test_alarms_per_day_exact_rate_is_not_rounded_down():
    # the same day with merge 0: every flagged window is its own episode; one is allowed, the largest
    s = scored(np.arange(1.0, 721.0), np.zeros(720, dtype=int), interval=2, merge=0)
    assert alarms_per_day(s, target=1.0) == 719.5


def test_alarms_per_day_stays_within_target_on_validation():
    rng = np.random.default_rng(0)
    labels = (rng.random(5000) < 0.01).astype(int)
    errors = rng.lognormal(size=5000)
    s = scored(errors, labels, interval=2, horizon=10)
    cuts = candidate_thresholds(errors)
    for target in (1.0, 5.0, 10.0):
        threshold = choose_threshold("alarms-per-day", s, target=target)
        assert false_episodes_per_day(s, threshold) <= target
        # and it is where lowering the threshold first breaks the budget: the next cut down is over it
        lower = cuts[np.searchsorted(cuts, threshold) - 1]
        assert lower < threshold and false_episodes_per_day(s, lower) > target
    # 20 a day is never exceeded: low cuts flag so much that it merges into few long episodes
    # (all flagged: one episode in 6.9 days), so every window may be flagged
    assert choose_threshold("alarms-per-day", s, target=20.0) == cuts[0]


def test_ties_never_exceed_the_alarm_budget():
    # 4 windows 360 minutes apart are one day: 1 false episode allowed; the three 2s go together
    s = scored([1.0, 2.0, 2.0, 2.0], np.zeros(4, dtype=int), interval=360)
    threshold = alarms_per_day(s, target=1.0)
    assert np.sum(flag(s.scores, threshold)) <= 1
    assert false_episodes_per_day(s, threshold) <= 1


@pytest.mark.parametrize("rule", [name for name, spec in RULES.items() if spec.needs_positives])
def test_label_rules_without_positives_name_a_rule_that_works(rule):
    s = scored(ERRORS, np.zeros(6, dtype=int))
    with pytest.raises(UserError, match="alarms-per-day or --rule value"):
        choose_threshold(rule, s)
    # six windows at 2 minutes are 1/120 day: not one false episode fits in 1 a day
    assert choose_threshold("alarms-per-day", s) == 6.0
    assert choose_threshold("value", s) == 0.3


def test_alarms_per_day_counts_no_episode_that_warns_of_a_break_as_false():
    # Without normal windows the rule still works: every window precedes a break within the
    # horizon, so no episode is false and every window may be flagged.
    s = scored(ERRORS, np.ones(6, dtype=int))
    assert choose_threshold("alarms-per-day", s, target=0) == 0.5
    # the same scores with no break at all: every episode is false, so none is allowed
    assert choose_threshold("alarms-per-day", scored(ERRORS, np.ones(6, dtype=int), breaks=[]), target=0) == 6.0


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
        choose_threshold("value", scored(np.array([]), np.array([], dtype=int)))


def test_precision_recall_by_threshold_matches_sklearn():
    cuts, precision, recall = precision_recall_by_threshold(ERRORS, LABELS)
    for t, p, r in zip(cuts, precision, recall):
        flags = flag(ERRORS, t)
        assert r == recall_score(LABELS, flags)
        if flags.any():
            assert p == precision_score(LABELS, flags)
        else:
            assert np.isnan(p)


# -- the distribution rules: quantile and evt ---------------------------------------------


def exponential_scores(n, seed=0, positives=0):
    """``n`` normal windows with Exp(1) scores (the q quantile is -log(1 - q)), then
    ``positives`` positive windows scoring 1000."""
    rng = np.random.default_rng(seed)
    return np.append(rng.exponential(1.0, n), np.full(positives, 1000.0)), np.r_[np.zeros(n), np.ones(positives)]


def test_quantile_is_factor_times_the_quantile_of_normal_scores_only():
    # normal scores 1..100 and positives far above: the positives do not move the quantile
    s = scored(np.r_[np.arange(1.0, 101.0), [500.0, 600.0]], np.r_[np.zeros(100), [1, 1]].astype(int))
    assert choose_threshold("quantile", s, q=0.99, factor=1.5) == pytest.approx(1.5 * 99.01)
    assert choose_threshold("quantile", s, q=0.5) == pytest.approx(50.5)  # factor 1 by default


def test_quantile_on_train_reads_the_training_normal_scores():
    from dataclasses import replace

    s = replace(scored(np.arange(1.0, 101.0), np.zeros(100, dtype=int)), train_normal=np.arange(0.0, 11.0))
    assert choose_threshold("quantile", s, q=1.0, on="train") == 10.0
    assert choose_threshold("quantile", s, q=1.0, on="valid") == 100.0


def test_quantile_without_labels_uses_every_window():
    # unlabelled data: every window is y=0
    assert choose_threshold("quantile", scored(np.arange(1.0, 11.0), np.zeros(10, dtype=int)), q=1.0) == 10.0


@pytest.mark.parametrize("risk", [1e-2, 1e-3, 1e-4])
def test_evt_matches_the_true_exponential_quantile(risk):
    scores, labels = exponential_scores(20000, positives=5)
    threshold = choose_threshold("evt", scored(scores, labels.astype(int)), risk=risk)
    assert threshold == pytest.approx(-np.log(risk), rel=0.05)


def test_evt_extrapolates_beyond_the_largest_score_for_a_risk_below_one_in_n():
    scores, labels = exponential_scores(20000, seed=4)
    threshold = choose_threshold("evt", scored(scores, labels.astype(int)), risk=1e-6)
    assert threshold > scores.max()
    assert threshold == pytest.approx(-np.log(1e-6), rel=0.15)


def test_evt_matches_a_heavy_generalized_pareto_quantile():
    # GPD shape 0.25, scale 1 by inversion: P(X > x) = (1 + 0.25 x) ** -4
    rng = np.random.default_rng(7)
    gamma, risk = 0.25, 1e-4
    scores = (rng.random(20000) ** -gamma - 1) / gamma
    truth = (risk ** -gamma - 1) / gamma
    assert choose_threshold("evt", scored(scores, np.zeros(scores.size, dtype=int)), risk=risk) == \
        pytest.approx(truth, rel=0.15)


@pytest.mark.parametrize("params, message", [
    ({"risk": 0.0}, "--risk 0"), ({"risk": 1.0}, "a probability in"), ({"risk": -0.1}, "a probability in"),
    ({"on": "test"}, "valid, train or fit"),
])
def test_evt_bad_parameters(params, message):
    with pytest.raises(UserError, match=message):
        resolve_params("evt", **params)


@pytest.mark.parametrize("params, message", [({"q": 1.5}, "a quantile in"), ({"factor": 0.0}, "--factor 0"),
                                             ({"risk": 0.1}, "--risk does not apply")])
def test_quantile_bad_parameters(params, message):
    with pytest.raises(UserError, match=message):
        resolve_params("quantile", **params)


@pytest.mark.parametrize("scores, message", [(np.arange(1.0, 11.0), "at least 20 normal validation scores"),
                                             (np.ones(100), "too few distinct large values")])
def test_evt_refuses_too_few_or_constant_scores(scores, message):
    with pytest.raises(UserError, match=message):
        choose_threshold("evt", scored(scores, np.zeros(scores.size, dtype=int)))


def test_alarms_per_day_on_short_validation_extrapolates_from_the_tail_and_says_so():
    # 20,000 one-second windows (0.23 days) with Exp(1) normal scores: a budget of 1 a day allows
    # no alarm there. One flagged window a day is a risk of 1/86,400, beyond the largest score.
    scores, labels = exponential_scores(20000, seed=5)
    s = scored(scores, labels.astype(int), interval=1 / 60)
    threshold = alarms_per_day(s, target=1.0)
    assert threshold > scores.max()
    assert threshold == pytest.approx(np.log(86400), rel=0.15)
    said = fitted_tail("alarms-per-day", s, {"target": 1.0})
    assert "extrapolates" in said["note"] and said["tail"]["n"] == 20000


def test_alarms_per_day_on_long_enough_validation_counts_episodes_as_before():
    scores, labels = exponential_scores(2000, seed=5)
    s = scored(scores, labels.astype(int), interval=1.0)  # 1.4 days
    assert not extrapolates(s, 1.0)
    assert fitted_tail("alarms-per-day", s, {"target": 1.0}) is None
    assert alarms_per_day(s, target=1.0) in candidate_thresholds(scores)


# -- merge gap and horizon in the data's cadence ----------------------------------------------


@pytest.mark.parametrize("merge, horizon, interval, shift, expected", [
    (None, None, 2.0, 2, (30.0, 4.0)),  # the sheet-break defaults: 15 rows and the label shift, as always
    (None, None, 1 / 60, 0, (0.25, 1 / 60)),  # 1-second data: 15 seconds, one row
    (30.0, 60.0, 1 / 60, 0, (30.0, 60.0)),  # numbers are minutes, as before units
    ("30", "0.5", 1 / 60, 0, (30.0, 0.5)),  # and so are bare numbers on the command line
    ("90s", "2h", 2.0, 2, (1.5, 120.0)),
    ("10rows", "3rows", 0.5, 2, (5.0, 1.5)),
    ("0", "1min", 2.0, 2, (0.0, 1.0)),  # merge 0: every flagged window is its own episode
])
def test_merge_and_horizon_in_units_rows_or_minutes(merge, horizon, interval, shift, expected):
    from lstm_rare_event.alarms.thresholds import ThresholdOptions

    resolved = ThresholdOptions(merge=merge, horizon=horizon).resolved(interval, shift)
    assert (resolved.merge, resolved.horizon) == pytest.approx(expected)


@pytest.mark.parametrize("merge, horizon, message", [
    ("5parsecs", None, "--merge '5parsecs': expected a duration"), ("-1", None, "--merge -1"),
    ("1.5rows", None, "whole number"), (None, "0rows", "--horizon 0rows: must be more than 0"),
    (None, "nan", "--horizon nan"),
])
def test_bad_merge_or_horizon(merge, horizon, message):
    from lstm_rare_event.alarms.thresholds import ThresholdOptions

    with pytest.raises(UserError, match=message):
        ThresholdOptions(merge=merge, horizon=horizon)

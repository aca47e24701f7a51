"""Interval metrics and chance on hand-made arrays with known answers."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from lstm_rare_event.alarms.intervals import chance, detected, detected_share, interval_metrics, on_share, runs

START = np.datetime64("2024-03-01T00:00:00", "s")

# Two intervals: windows 2-4 (flagged from window 3) and 7-8 (never flagged); false flags at 1 and 10.
Y = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0])
FLAGS = np.array([0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0], dtype=bool)


def times(n, minutes=2):
    return START + np.arange(n) * np.timedelta64(minutes * 60, "s")


def test_runs_are_the_intervals_of_labelled_windows():
    starts, stops = runs(Y)
    assert starts.tolist() == [2, 7] and stops.tolist() == [5, 9]
    assert [r.tolist() for r in runs([1, 1, 0, 1])] == [[0, 3], [2, 4]]
    assert [r.tolist() for r in runs([0, 0])] == [[], []]


def test_point_metrics_count_windows():
    m = interval_metrics(Y, FLAGS, times(12))
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 2, 3, 5)
    assert m["precision"] == 0.5 and m["recall"] == 0.4 and m["f1"] == pytest.approx(4 / 9)
    assert m["far"] == pytest.approx(2 / 7) and m["mar"] == pytest.approx(3 / 5)
    assert m["precision"] == precision_score(Y, FLAGS) and m["recall"] == recall_score(Y, FLAGS)
    assert m["f1"] == pytest.approx(f1_score(Y, FLAGS))


def test_an_interval_is_detected_by_a_flag_inside_it_and_delayed_to_its_first_flag():
    hit, first = detected(Y, FLAGS)
    assert hit.tolist() == [True, False] and first.tolist() == [3, -1]
    m = interval_metrics(Y, FLAGS, times(12))
    assert (m["n_intervals"], m["detected"], m["detected_share"]) == (2, 1, 0.5)
    # the first interval starts at window 2 and is first flagged at window 3: one 2-minute step
    assert m["mean_delay_minutes"] == 2.0 and m["median_delay_minutes"] == 2.0
    assert [i["delay_minutes"] for i in m["intervals"]] == [2.0, None]
    # a flag just after an interval (window 9, 10) detects nothing
    assert not detected(Y, np.arange(12) >= 9)[0].any()


def test_delays_are_averaged_over_detected_intervals():
    y = np.array([1, 1, 0, 1, 1, 1, 0])
    flags = np.array([1, 0, 0, 0, 0, 1, 0], dtype=bool)
    m = interval_metrics(y, flags, times(7, minutes=1))
    assert m["detected"] == 2 and m["mean_delay_minutes"] == 1.0 and m["median_delay_minutes"] == 1.0


def test_chance_is_the_figure_over_rotations_of_the_flags():
    y = np.array([1] * 5 + [0] * 5)
    one = np.zeros(10, dtype=bool)
    one[0] = True
    # rotated by 1..9, the single flag lands inside the interval (windows 0-4) at 1, 2, 3, 4: 4 of 9
    assert chance(lambda f: detected_share(y, f), one) == pytest.approx(4 / 9)
    assert chance(lambda f: detected_share(y, f), np.ones(10, dtype=bool)) == 1.0
    assert np.isnan(chance(lambda f: detected_share(y, f), np.ones(1, dtype=bool)))


def test_alarm_on_share_and_chance_in_the_metrics():
    m = interval_metrics(Y, FLAGS, times(12))
    assert m["alarm_on_share"] == on_share(FLAGS) == 4 / 12
    assert 0 < m["detected_share_chance"] < 1


def test_no_interval_leaves_the_event_figures_undefined():
    m = interval_metrics(np.zeros(4), np.array([0, 1, 0, 0], dtype=bool), times(4))
    assert m["n_intervals"] == 0 and np.isnan(m["detected_share"]) and np.isnan(m["mean_delay_minutes"])
    assert np.isnan(m["recall"]) and m["far"] == pytest.approx(1 / 4)

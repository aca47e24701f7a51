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


# -- chance and on-time in the evaluation, and interval runs through the command line ------

from types import SimpleNamespace  # noqa: E402

from lstm_rare_event.alarms import evaluation, verdict  # noqa: E402
from lstm_rare_event.alarms.bootstrap import interval_groups  # noqa: E402


def windows_of(y, minutes=2):
    y = np.asarray(y)
    return SimpleNamespace(y=y, end_time=times(len(y), minutes), event_time=np.full(len(y), np.datetime64("NaT", "s")))


def test_evaluation_reports_intervals_for_interval_labels_only():
    w = windows_of(Y)
    s = evaluation.scored(FLAGS * 2.0, w, 2.0, 0.0, 2.0)
    report = evaluation.evaluate_scores(s, w, {"value": 1.0}, labels="intervals")
    assert report["intervals"]["detected"] == 1 and report["intervals"]["f1"] == pytest.approx(4 / 9)
    assert "intervals" not in evaluation.evaluate_scores(s, w, {"value": 1.0})


def test_breaks_warned_by_chance_and_alarm_on_share():
    # 10 windows 2 minutes apart, a break after window 4 (at 10 min), horizon 2 minutes: only an
    # episode starting at window 4 warns. One flag at window 4 warns; rotated to 1..9 it is never there.
    w = SimpleNamespace(y=np.zeros(10), end_time=times(10), event_time=None)
    s = evaluation.Scored(np.zeros(10), np.zeros(10), w.end_time, np.array([START + np.timedelta64(600, "s")]),
                          2.0, 0.0, 2.0)
    flags = np.arange(10) == 4
    c = evaluation.warned_chance(s, flags)
    assert c == {"warned_share": 1.0, "warned_share_chance": 0.0, "alarm_on_share": 0.1}
    # always on: warned, and by chance just as much
    assert evaluation.warned_chance(s, np.ones(10, dtype=bool))["warned_share_chance"] == 1.0


def test_verdict_says_detected_beside_chance_and_on_time():
    m = interval_metrics(Y, FLAGS, times(12))
    v = verdict.verdict(episodes=None, intervals=m)
    assert "Detected 1 of 2 anomaly intervals" in v["lines"][0] and "alarm on 33% of the time" in v["lines"][0]
    assert "F1 0.44" in v["lines"][0]
    warned = verdict.warned({"n_breaks": 2, "warned": 1, "horizon_minutes": 60, "mean_lead_minutes": 5.0,
                             "median_lead_minutes": 5.0},
                            {"warned_share": 0.5, "warned_share_chance": 0.25, "alarm_on_share": 0.1})
    assert "(chance 25%, alarm on 10% of the time)" in warned["text"]


def test_interval_groups_block_each_interval_and_normal_days():
    groups = interval_groups(Y, times(12, minutes=240))  # 12 windows 4 h apart: two days
    assert groups[2] == groups[3] == groups[4] != groups[7] == groups[8]
    normal = groups[Y == 0]
    assert len(set(normal.tolist())) == 2 and not set(normal.tolist()) & {groups[2], groups[7]}


def test_evaluate_and_compare_of_interval_runs(tmp_path):
    import json

    from conftest import ok, skab_like

    path = tmp_path / "data.csv"
    skab_like(400, anomaly=(250, 300)).to_csv(path, index=False)
    ok("prepare", path, "--out", tmp_path / "prep", "--time-column", "datetime", "--label-column", "anomaly",
       "--drop", "changepoint", "--detrend", "0", "--labels", "intervals", "--train-rows", "160", "-q")
    for name in ("mahalanobis", "restart"):
        run = tmp_path / name
        ok("train", tmp_path / "prep", "--detector", name, "--out", run, "-q")
        ok("threshold", run, "--rule", "quantile", "--q", "0.99", "--factor", "1.5", "-q")
    report = json.loads(ok("evaluate", tmp_path / "mahalanobis", "--json", "-q").stdout)
    i = report["intervals"]
    assert i["n_intervals"] == 1 and {"f1", "far", "mar", "detected_share_chance", "alarm_on_share"} <= set(i)
    assert "anomaly intervals" in " ".join(report["verdict"]["lines"])
    assert "intervals detected by chance" in ok("evaluate", tmp_path / "mahalanobis", "-q").stdout
    ok("evaluate", tmp_path / "restart", "-q")
    text = ok("compare", tmp_path / "mahalanobis", tmp_path / "restart", "--replicates", 50, "-q").stdout
    assert "intervals detected" in text and "1 anomaly intervals" in text

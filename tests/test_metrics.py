"""Window metrics against hand-computed confusion matrices; events and lead times on a hand-made timeline."""

import math

import numpy as np
import pytest

from lstm_rare_event.alarms.metrics import (
    break_times,
    curves,
    days_covered,
    event_metrics,
    false_alarms_per_day,
    window_metrics,
)


def test_window_metrics_from_a_hand_computed_confusion_matrix():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0, 0, 1])
    flags = np.array([0, 1, 0, 0, 1, 0, 1, 0, 1, 1], dtype=bool)
    # TP: 4, 6, 9; FN: 5; FP: 1, 8; TN: 0, 2, 3, 7
    m = window_metrics(y, flags)
    assert m["confusion"] == {"tn": 4, "fp": 2, "fn": 1, "tp": 3}
    assert m["n_windows"] == 10 and m["n_positive"] == 4 and m["base_rate"] == 0.4
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    assert m["false_positive_rate"] == pytest.approx(2 / 6)
    assert "roc_auc" not in m


def test_auc_scores_against_hand_computed_values():
    y = np.array([0, 0, 1, 1])
    errors = np.array([0.1, 0.4, 0.35, 0.8])
    m = window_metrics(y, errors > 0.3, errors)
    # ROC-AUC: of the 4 (positive, normal) pairs, the positive is higher in 3
    assert m["roc_auc"] == pytest.approx(0.75)
    # AP: ranked 0.8 (+), 0.4 (-), 0.35 (+): precision 1 at recall 1/2, 2/3 at recall 1
    assert m["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_undefined_metrics_are_nan_not_zero():
    m = window_metrics(np.array([0, 0, 1]), np.zeros(3, dtype=bool), np.array([0.1, 0.2, 0.3]))
    assert math.isnan(m["precision"])  # no alarm
    assert m["recall"] == 0.0 and m["f1"] == 0.0
    one_class = window_metrics(np.zeros(3, dtype=int), np.array([0, 1, 0], dtype=bool), np.array([0.1, 0.2, 0.3]))
    assert math.isnan(one_class["recall"]) and math.isnan(one_class["roc_auc"]) and math.isnan(one_class["pr_auc"])
    assert one_class["false_positive_rate"] == pytest.approx(1 / 3)
    assert curves(np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.3])) is None


def test_curves_run_from_corner_to_corner():
    c = curves(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert (c["fpr"][0], c["tpr"][0], c["fpr"][-1], c["tpr"][-1]) == (0, 0, 1, 1)
    assert c["recall"].max() == 1 and c["precision"].min() == 0.5


def test_false_alarms_per_day_counts_flagged_normal_windows_only():
    y = np.zeros(720, dtype=int)
    y[:10] = 1
    flags = np.zeros(720, dtype=bool)
    flags[:10] = True  # true alarms: not counted
    flags[100:105] = True
    assert days_covered(720, 2) == 1.0
    assert false_alarms_per_day(flags, y, 2) == 5.0
    assert false_alarms_per_day(flags, y, 1) == 10.0  # the same windows cover half a day at 1 minute


def test_events_caught_missed_and_lead_time():
    start = np.datetime64("2024-03-01T09:00:00", "s")
    end_time = start + np.arange(40) * np.timedelta64(2, "m")  # 09:00 .. 10:18
    event_time = np.full(40, np.datetime64("NaT"), dtype="datetime64[s]")
    y = np.zeros(40, dtype=np.int8)
    # break A at 09:30: windows ending 09:26 (row 13), 09:28 (14)
    # break B at 09:50: windows ending 09:46 (23), 09:48 (24)
    # break C at 10:10: windows ending 10:06 (33), 10:08 (34)
    for when, rows in (("09:30", [13, 14]), ("09:50", [23, 24]), ("10:10", [33, 34])):
        y[rows] = 1
        event_time[rows] = np.datetime64(f"2024-03-01T{when}:00", "s")
    flags = np.zeros(40, dtype=bool)
    flags[[14]] = True  # A: only the later window -> lead 2 minutes
    flags[[23, 24]] = True  # B: both -> lead from the earliest, 4 minutes
    flags[[2, 20, 30]] = True  # C missed; three false alarms
    order = np.random.default_rng(1).permutation(40)  # a random split stores windows in any order
    ev = event_metrics(flags[order], y[order], end_time[order], event_time[order], interval_minutes=2)
    assert (ev["n_breaks"], ev["caught"], ev["missed"]) == (3, 2, 1)
    assert [b["lead_minutes"] for b in ev["breaks"]] == [2.0, 4.0, None]
    assert [b["flagged"] for b in ev["breaks"]] == [1, 2, 0]
    assert [b["windows"] for b in ev["breaks"]] == [2, 2, 2]
    assert ev["breaks"][0]["event_time"] == "2024-03-01T09:30:00"
    assert ev["mean_lead_minutes"] == 3.0
    assert ev["false_alarms"] == 3
    assert ev["days"] == pytest.approx(80 / 1440)
    assert ev["false_alarms_per_day"] == pytest.approx(3 / (80 / 1440))


def test_no_break_caught_has_undefined_lead_time():
    event_time = np.array(["NaT", "2024-03-01T10:00", "2024-03-01T10:00"], dtype="datetime64[s]")
    end_time = np.array(["2024-03-01T09:54", "2024-03-01T09:56", "2024-03-01T09:58"], dtype="datetime64[s]")
    ev = event_metrics(np.zeros(3, dtype=bool), np.array([0, 1, 1]), end_time, event_time, 2)
    assert (ev["n_breaks"], ev["caught"], ev["false_alarms"]) == (1, 0, 0)
    assert math.isnan(ev["mean_lead_minutes"])


def test_break_times_are_distinct_and_ignore_normal_windows():
    event_time = np.array(["NaT", "2024-03-01T11:00", "2024-03-01T10:00", "2024-03-01T11:00"],
                          dtype="datetime64[s]")
    assert break_times(np.array([0, 1, 1, 1]), event_time).astype(str).tolist() == [
        "2024-03-01T10:00:00", "2024-03-01T11:00:00"]

"""The pure evaluation functions shared by threshold, evaluate and backtest: scores in,
JSON-ready results out, the same for every detector."""

import json
import math

import numpy as np
import pytest

from lstm_rare_event.alarms import evaluation
from lstm_rare_event.alarms.episodes import episode_metrics
from lstm_rare_event.alarms.rule import flag
from lstm_rare_event.alarms.thresholds import choose_threshold
from lstm_rare_event.preprocess.windows import Windows

START = np.datetime64("2024-03-01T00:00:00", "s")
NAT = np.datetime64("NaT", "s")


def windows(y, breaks=(), every=10):
    """Windows (the scores are given apart: X is never looked at) ending every ``every``
    minutes; ``breaks`` maps a break minute to its positive rows."""
    n = len(y)
    end_time = START + np.arange(n) * np.timedelta64(every, "m")
    event_time = np.full(n, NAT)
    for minute, rows in breaks:
        event_time[list(rows)] = START + np.timedelta64(minute, "m")
    return Windows(np.zeros((n, 1, 1), np.float32), np.asarray(y, np.int8), end_time, event_time, np.full(n, START))


# 12 windows 10 minutes apart (2 hours = 1/12 day); breaks at 45 (rows 3, 4) and 95 (row 9).
W = windows([0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0], breaks=[(45, [3, 4]), (95, [9])])
SCORES = np.array([0.1, 0.9, 0.2, 0.3, 0.8, 0.1, 0.2, 0.7, 0.1, 0.6, 0.2, 0.1])


def test_scored_takes_the_distinct_breaks_and_the_alarm_counting():
    s = evaluation.scored(SCORES.tolist(), W, 10.0, 15.0, 20.0)
    assert s.scores.dtype == np.float64 and s.scores.tolist() == SCORES.tolist()
    assert s.break_times.astype(str).tolist() == ["2024-03-01T00:45:00", "2024-03-01T01:35:00"]
    assert (s.interval_minutes, s.merge_minutes, s.horizon_minutes) == (10.0, 15.0, 20.0)


def test_choose_on_validation_gives_the_rules_value_and_the_budget_thresholds():
    s = evaluation.scored(SCORES, W, 10.0, 15.0, 20.0)
    chosen = evaluation.choose_on_validation(s, "value", {"value": 0.5})
    assert chosen["value"] == 0.5
    # 0.5 flags rows 1, 4, 7, 9 (ends 10, 40, 70, 90; 30 or 20 minutes apart, so four episodes).
    # Within 20 minutes before a break: 40 (of 45) and 90 (of 95); 10 and 70 warn of nothing.
    v = chosen["validation"]
    assert v["confusion"] == {"tn": 7, "fp": 2, "fn": 1, "tp": 2}
    assert (v["episodes"]["episodes"], v["episodes"]["false_episodes"], v["episodes"]["warned"]) == (4, 2, 2)
    assert v["episodes"]["false_episodes_per_day"] == pytest.approx(2 * 12)
    assert v["false_alarms_per_day"] == pytest.approx(2 * 12)
    # 1/12 day: not one false episode fits in 1 or 5 a day. From the top: 0.9 (row 1, at 10) is
    # false at once, so both budgets stop above it.
    assert chosen["budgets"] == [{"alarms_per_day": budget, "value": choose_threshold("alarms-per-day", s, target=budget)}
                                 for budget in evaluation.BUDGETS]
    assert [b["value"] for b in chosen["budgets"]] == [0.9, 0.9]
    json.dumps(chosen, allow_nan=False)  # JSON-ready: plain numbers, NaN as null


def test_evaluate_scores_budget_rows_are_the_episodes_at_each_budget_threshold():
    s = evaluation.scored(SCORES, W, 10.0, 15.0, 20.0)
    chosen = {"value": 0.5, "budgets": [{"alarms_per_day": 1.0, "value": 0.75}, {"alarms_per_day": 5.0, "value": 0.25}]}
    report = evaluation.evaluate_scores(s, W, chosen)
    assert report["windows"]["confusion"] == {"tn": 7, "fp": 2, "fn": 1, "tp": 2}
    assert (report["events"]["n_breaks"], report["events"]["caught"]) == (2, 2)
    assert report["episodes"]["warned"] == 2 and report["episodes"]["horizon_minutes"] == 20.0
    rows = report["alarm_budgets"]["rows"]
    assert [r["alarms_per_day"] for r in rows] == [1.0, 5.0]
    for row in rows:
        ep = episode_metrics(s.end_time, flag(s.scores, row["value"]), s.break_times, 10.0, 15.0, 20.0)
        for key in ("false_episodes_per_day", "warned", "n_breaks"):
            assert row[key] == ep[key]
    # 0.75 flags rows 1 (10) and 4 (40): one false episode, A warned 5 minutes ahead, B missed
    assert (rows[0]["warned"], rows[0]["mean_lead_minutes"]) == (1, 5.0)
    assert rows[0]["false_episodes_per_day"] == pytest.approx(12)
    # 0.25 flags rows 1, 3, 4, 7, 9: 30 and 40 merge (10 < 15) into one episode from 30, which
    # is 15 minutes before A; B is warned by 90: leads 15 and 5
    assert (rows[1]["warned"], rows[1]["mean_lead_minutes"]) == (2, 10.0)
    assert "validation" in report["alarm_budgets"]["basis"]
    json.dumps(report, allow_nan=False)


def test_evaluate_scores_without_budgets_or_breaks():
    y = np.zeros(6, dtype=int)
    s = evaluation.scored(np.arange(6.0), windows(y), 10.0, 15.0, 20.0)
    report = evaluation.evaluate_scores(s, windows(y), {"value": 3.5})
    assert report["alarm_budgets"]["rows"] == []
    e = report["episodes"]
    assert (e["n_breaks"], e["warned"], e["episodes"], e["false_episodes"]) == (0, 0, 1, 1)
    assert e["warned_share"] is None and e["mean_lead_minutes"] is None  # undefined, not 0
    assert report["windows"]["roc_auc"] is None
    assert math.isclose(e["false_episodes_per_day"], 1 / (6 * 10 / 1440))

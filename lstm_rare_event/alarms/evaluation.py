"""Choose a threshold on validation scores and measure it on test scores, in memory.

Pure functions of scores and windows, shared by the ``threshold`` and ``evaluate`` steps and
by ``backtest``, for every detector alike.
"""

from __future__ import annotations

import numpy as np

from lstm_rare_event.alarms import episodes, intervals, metrics, thresholds
from lstm_rare_event.alarms.rule import flag, smooth_parts
from lstm_rare_event.alarms.thresholds import Scored
from lstm_rare_event.files import to_jsonable

# False alarm episodes per day an operator might accept; thresholds for them are chosen on validation.
BUDGETS = (1.0, 5.0)
BUDGET_BASIS = ("threshold chosen on the validation split with --rule alarms-per-day --target BUDGET, "
                "applied unchanged to test: deployable, not an oracle; the test rate can differ")


def scored(scores, windows, interval_minutes: float, merge_minutes: float, horizon_minutes: float,
           train_normal=None) -> Scored:
    return Scored(np.asarray(scores, dtype=np.float64), np.asarray(windows.y), windows.end_time,
                  metrics.break_times(windows.y, windows.event_time), interval_minutes, merge_minutes,
                  horizon_minutes, train_normal)


def rule_scores(score, valid, train=None, smooth: int = 1, on_train: bool = False):
    """(validation scores, normal training scores or None): what a threshold rule reads.
    ``score``: the detector's score of windows; with ``train`` (needed for ``on_train`` or
    ``smooth`` > 1), the validation scores smoothed after the training windows', which lead
    into them as they do when the file is scored."""
    valid_scores = score(valid)
    if train is None:
        return valid_scores, None
    train_scores, valid_scores = smooth_parts(smooth, [(score(train), train.end_time, train.segment_start),
                                                       (valid_scores, valid.end_time, valid.segment_start)])
    return valid_scores, (train_scores[np.asarray(train.y) == 0] if on_train else None)


def alarm_summary(s: Scored, value: float) -> dict:
    """Per window and per episode, what threshold ``value`` does on ``s``."""
    flags = flag(s.scores, value)
    return {
        **metrics.window_metrics(s.y, flags),
        "false_alarms_per_day": metrics.false_alarms_per_day(flags, s.y, s.interval_minutes),
        "episodes": episodes.episode_metrics(s.end_time, flags, s.break_times, s.interval_minutes,
                                             s.merge_minutes, s.horizon_minutes),
    }


def choose_on_validation(s: Scored, rule: str, params: dict) -> dict:
    """The threshold ``rule`` picks, what it does on validation, and the alarm-budget thresholds."""
    value = thresholds.choose_threshold(rule, s, **params)
    return to_jsonable({
        "value": value,
        "validation": alarm_summary(s, value),
        "budgets": [{"alarms_per_day": budget, "value": thresholds.choose_threshold("alarms-per-day", s, target=budget)}
                    for budget in BUDGETS],
        **(thresholds.fitted_tail(rule, s, params) or {}),
    })


def evaluate_scores(s: Scored, windows, chosen: dict, labels: str = "events") -> dict:
    """Window metrics (with ROC-AUC and PR-AUC), break events, alarm episodes, the breaks warned
    beside chance and the alarm budgets of the test scores under ``chosen`` (a threshold with
    its budget values); with ``labels`` "intervals", the interval metrics too."""
    flags = flag(s.scores, chosen["value"])
    report = {
        "windows": metrics.window_metrics(s.y, flags, s.scores),
        "events": metrics.event_metrics(flags, s.y, windows.end_time, windows.event_time, s.interval_minutes),
        "episodes": episodes.episode_metrics(s.end_time, flags, s.break_times, s.interval_minutes,
                                             s.merge_minutes, s.horizon_minutes),
        "warned_chance": warned_chance(s, flags),
        "alarm_budgets": {"basis": BUDGET_BASIS,
                          "rows": [_budget_row(s, budget) for budget in chosen.get("budgets", [])]},
    }
    if labels == "intervals":
        report["intervals"] = intervals.interval_metrics(s.y, flags, s.end_time)
    return to_jsonable(report)


def warned_chance(s: Scored, flags) -> dict:
    """The share of breaks warned by the episodes of ``flags``, the same for the flags shifted
    in time (:func:`intervals.chance`), and the share of windows flagged."""

    def warned_share(f):
        found = episodes.find_episodes(s.end_time, f, s.merge_minutes)
        warned = episodes.warned_breaks(found, s.break_times, s.horizon_minutes)[0]
        return float(warned.mean()) if warned.size else float("nan")

    return {"warned_share": warned_share(flags), "warned_share_chance": intervals.chance(warned_share, flags),
            "alarm_on_share": intervals.on_share(flags)}


def _budget_row(s: Scored, budget: dict) -> dict:
    flags = flag(s.scores, budget["value"])
    ep = episodes.episode_metrics(s.end_time, flags, s.break_times, s.interval_minutes, s.merge_minutes,
                                  s.horizon_minutes)
    return {
        "alarms_per_day": budget["alarms_per_day"],
        "value": budget["value"],
        "false_episodes_per_day": ep["false_episodes_per_day"],
        "warned": ep["warned"],
        "n_breaks": ep["n_breaks"],
        "mean_lead_minutes": ep["mean_lead_minutes"],
    }

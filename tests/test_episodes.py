"""Alarm episodes, warned breaks and the episode-budget threshold on hand-made timelines."""

import math

import numpy as np
import pytest

from lstm_rare_event.errors import UserError
from lstm_rare_event.alarms.episodes import (
    DEFAULT_MERGE_MINUTES,
    episode_metrics,
    false_episodes_by_cut,
    find_episodes,
    threshold_for_episode_budget,
    warned_breaks,
    warning_curve,
)
from lstm_rare_event.alarms.thresholds import candidate_thresholds

T0 = np.datetime64("2020-01-01T00:00:00", "s")


def at(*minutes):
    """Times ``minutes`` after T0, datetime64[s]."""
    return T0 + (np.asarray(minutes, dtype=np.float64) * 60).astype(np.int64).astype("timedelta64[s]")


def every(step, n):
    return at(*np.arange(n) * step)


def test_gap_just_below_the_merge_merges_and_at_or_above_it_splits():
    assert DEFAULT_MERGE_MINUTES == 30
    # Gaps 29 (merged), 30 (new episode), 31 (new episode).
    e = find_episodes(at(0, 29, 59, 90), np.ones(4, dtype=bool))
    assert len(e) == 3
    assert e.start.tolist() == at(0, 59, 90).tolist() and e.end.tolist() == at(29, 59, 90).tolist()
    assert e.start.dtype == np.dtype("datetime64[s]")


def test_ids_and_opened_flags_with_unflagged_windows_between():
    # Windows every 10 minutes; flagged at 0, 20 (gap 20: merged over the unflagged 10),
    # 50 (gap 30: new), 60 (merged), 100 (gap 40: new).
    flags = np.zeros(11, dtype=bool)
    flags[[0, 2, 5, 6, 10]] = True
    e = find_episodes(every(10, 11), flags, merge_minutes=30)
    assert e.number.tolist() == [1, 0, 1, 0, 0, 2, 2, 0, 0, 0, 3]
    assert e.number.dtype == np.int64
    assert np.flatnonzero(e.opened).tolist() == [0, 5, 10]
    assert e.start.tolist() == at(0, 50, 100).tolist() and e.end.tolist() == at(20, 60, 100).tolist()


def test_a_hole_in_the_data_longer_than_the_merge_splits_an_episode():
    e = find_episodes(at(0, 2, 4, 40, 42), np.ones(5, dtype=bool), merge_minutes=30)
    assert e.number.tolist() == [1, 1, 1, 2, 2]


def test_merge_zero_makes_every_flagged_window_its_own_episode():
    e = find_episodes(every(2, 4), np.array([True, True, False, True]), merge_minutes=0)
    assert e.number.tolist() == [1, 2, 0, 3] and e.opened.tolist() == [True, True, False, True]


def test_no_flag_and_no_window_give_no_episode():
    e = find_episodes(every(2, 3), np.zeros(3, dtype=bool))
    assert len(e) == 0 and e.number.tolist() == [0, 0, 0] and not e.opened.any()
    empty = find_episodes(np.array([], dtype="datetime64[s]"), np.array([], dtype=bool))
    assert len(empty) == 0 and empty.number.shape == (0,) and empty.opened.shape == (0,)


def test_an_episode_exactly_the_horizon_before_the_break_warns():
    e = find_episodes(at(40, 100), np.ones(2, dtype=bool), merge_minutes=0)
    warned, lead, false = warned_breaks(e, at(100), horizon_minutes=60)
    assert warned.tolist() == [True] and lead.tolist() == [60.0]
    # The episode starting at the break itself warns of nothing.
    assert false.tolist() == [False, True]


def test_episodes_starting_too_early_or_at_or_after_the_break_do_not_warn():
    e = find_episodes(at(39, 100, 101), np.ones(3, dtype=bool), merge_minutes=0)
    warned, lead, false = warned_breaks(e, at(100), horizon_minutes=60)
    assert warned.tolist() == [False] and math.isnan(lead[0])
    assert false.tolist() == [True, True, True]


def test_only_the_start_counts_not_an_episode_running_into_the_horizon():
    # One episode from minute 30 to 90; the break at 100 with a 60-minute horizon needs a start at 40 or later.
    e = find_episodes(every(10, 10), np.arange(10) >= 3, merge_minutes=30)
    assert e.start.tolist() == at(30).tolist() and e.end.tolist() == at(90).tolist()
    warned, _, false = warned_breaks(e, at(100), horizon_minutes=60)
    assert warned.tolist() == [False] and false.tolist() == [True]


def test_one_episode_warns_two_breaks():
    e = find_episodes(at(0, 10), np.ones(2, dtype=bool))
    warned, lead, false = warned_breaks(e, at(30, 50), horizon_minutes=60)
    assert warned.tolist() == [True, True] and lead.tolist() == [30.0, 50.0] and false.tolist() == [False]


def test_lead_time_is_from_the_earliest_warning_episode():
    e = find_episodes(at(10, 40), np.ones(2, dtype=bool), merge_minutes=10)
    assert len(e) == 2
    warned, lead, false = warned_breaks(e, at(60), horizon_minutes=60)
    assert warned.tolist() == [True] and lead.tolist() == [50.0] and false.tolist() == [False, False]


def test_no_break_makes_every_episode_false():
    e = find_episodes(at(0, 50), np.ones(2, dtype=bool))
    warned, lead, false = warned_breaks(e, np.array([], dtype="datetime64[s]"), horizon_minutes=60)
    assert warned.shape == (0,) and lead.shape == (0,) and false.tolist() == [True, True]


def two_days():
    """1440 windows of 2 minutes (2 days); episodes A at 20-24, B at 200, C at 1000-1002,
    D at 2000 minutes; breaks at 60 (A warns, lead 40), 1500 (missed), 2030 (D warns, lead 30)."""
    end_time = every(2, 1440)
    flags = np.zeros(1440, dtype=bool)
    flags[[10, 11, 12, 100, 500, 501, 1000]] = True
    return end_time, flags, at(60, 1500, 2030)


def test_episode_metrics_on_a_hand_made_timeline():
    end_time, flags, breaks = two_days()
    m = episode_metrics(end_time, flags, breaks, interval_minutes=2, merge_minutes=30, horizon_minutes=60)
    assert m["merge_minutes"] == 30 and m["horizon_minutes"] == 60
    assert (m["n_breaks"], m["warned"], m["missed"], m["episodes"], m["false_episodes"]) == (3, 2, 1, 4, 2)
    assert m["warned_share"] == pytest.approx(2 / 3)
    assert m["mean_lead_minutes"] == 35 and m["median_lead_minutes"] == 35
    assert m["days"] == 2 and m["false_episodes_per_day"] == 1.0
    assert m["breaks"] == [
        {"event_time": "2020-01-01T01:00:00", "warned": True, "lead_minutes": 40.0},
        {"event_time": "2020-01-02T01:00:00", "warned": False, "lead_minutes": None},
        {"event_time": "2020-01-02T09:50:00", "warned": True, "lead_minutes": 30.0},
    ]


def test_episode_metrics_undefined_values_are_nan():
    end_time, flags, _ = two_days()
    none = episode_metrics(end_time, flags, np.array([], dtype="datetime64[s]"), 2, 30, 60)
    assert none["n_breaks"] == 0 and math.isnan(none["warned_share"]) and math.isnan(none["mean_lead_minutes"])
    assert none["false_episodes"] == 4 and none["false_episodes_per_day"] == 2.0 and none["breaks"] == []
    quiet = episode_metrics(end_time, np.zeros(1440, dtype=bool), at(60), 2, 30, 60)
    assert (quiet["episodes"], quiet["false_episodes"], quiet["false_episodes_per_day"]) == (0, 0, 0.0)
    assert quiet["warned_share"] == 0.0 and math.isnan(quiet["median_lead_minutes"])
    empty = episode_metrics(np.array([], dtype="datetime64[s]"), np.array([], dtype=bool), at(60), 2, 30, 60)
    assert empty["days"] == 0 and math.isnan(empty["false_episodes_per_day"]) and empty["missed"] == 1


def bridge_day():
    """144 windows of 10 minutes (1 day), scores 0 except A at minute 100 (5), B at 140 (4)
    and C at 120 (3). Cuts 1.5, 3.5, 4.5, 5: A alone, then A and B two episodes (gap 40), then
    C bridges them into one (gaps 20)."""
    scores = np.zeros(144)
    scores[[10, 14, 12]] = [5.0, 4.0, 3.0]
    return scores, every(10, 144)


def test_budget_stops_at_the_first_violation_even_if_a_lower_threshold_merges_back_into_budget():
    scores, end_time = bridge_day()
    none = np.array([], dtype="datetime64[s]")
    cuts = candidate_thresholds(scores)
    assert cuts.tolist() == [1.5, 3.5, 4.5, 5.0]
    assert false_episodes_by_cut(scores, end_time, none, 30, 60, cuts).tolist() == [1, 2, 1, 0]
    # 1 per day: 4.5 is fine, 3.5 has 2 false episodes; 1.5 (one merged episode) is not reached.
    assert threshold_for_episode_budget(scores, end_time, none, 10, 30, 60, budget=1) == 4.5
    assert threshold_for_episode_budget(scores, end_time, none, 10, 30, 60, budget=2) == 1.5
    assert threshold_for_episode_budget(scores, end_time, none, 10, 30, 60, budget=0) == 5.0


def test_budget_counts_only_false_episodes():
    scores, end_time = bridge_day()
    # A break at 170: B (start 140) warns of it, A (100) does not; counts 1, 1, 1, 0 by cut.
    counts = false_episodes_by_cut(scores, end_time, at(170), 30, 60, candidate_thresholds(scores))
    assert counts.tolist() == [1, 1, 1, 0]
    assert threshold_for_episode_budget(scores, end_time, at(170), 10, 30, 60, budget=1) == 1.5


@pytest.mark.parametrize("seed, merge", [(3, 20), (4, 0), (5, 100)])
def test_sweep_matches_a_pass_per_threshold_and_the_budget_rule_by_brute_force(seed, merge):
    rng = np.random.default_rng(seed)
    n = 300
    end_time = np.cumsum(rng.choice([2, 2, 2, 50], n)) * np.timedelta64(60, "s") + T0
    scores = np.round(rng.gamma(1.0, size=n), 1)  # ties on purpose
    breaks = end_time[rng.choice(n, 6, replace=False)]
    cuts = candidate_thresholds(scores)
    brute = [episode_metrics(end_time, scores > c, breaks, 2, merge, 45)["false_episodes"] for c in cuts]
    assert false_episodes_by_cut(scores, end_time, breaks, merge, 45, cuts).tolist() == brute
    days = n * 2 / 1440
    for budget in (0.0, 2.0, 5.0, 12.0):
        expected = cuts[0]
        for k in range(len(cuts) - 1, -1, -1):
            if brute[k] / days > budget:
                expected = cuts[k + 1]
                break
        assert threshold_for_episode_budget(scores, end_time, breaks, 2, merge, 45, budget) == expected


def test_warning_curve_on_a_hand_example():
    # One window every 100 minutes at 0..300, each its own episode; a break at 330 that
    # only the last window (300) warns of; 4 windows of 6 hours = 1 day.
    # Quantiles 0, 0.5, 0.75 (1 - 1/4) and 1: the upper ones crowd towards the top.
    curve = warning_curve(np.array([1.0, 2.0, 3.0, 4.0]), at(0, 100, 200, 300), at(330), 360, 30, 60, n_points=4)
    assert curve["thresholds"].tolist() == [1.0, 2.5, 3.25, 4.0]
    assert curve["false_episodes_per_day"].tolist() == [2.0, 1.0, 0.0, 0.0]
    assert curve["warned_share"].tolist() == [1.0, 1.0, 1.0, 0.0]
    empty = warning_curve(np.array([]), np.array([], dtype="datetime64[s]"), at(330), 360, 30, 60)
    assert all(v.shape == (0,) for v in empty.values())


@pytest.mark.parametrize("call", [
    lambda: find_episodes(at(10, 0), [True, True]),
    lambda: find_episodes(at(0, 10), [True, True], merge_minutes=-1),
    lambda: warned_breaks(find_episodes(at(0), [True]), at(10), horizon_minutes=0),
    lambda: threshold_for_episode_budget([1.0, 2.0], at(0, 10), at(5), 10, 30, 60, budget=-1),
    lambda: threshold_for_episode_budget([], np.array([], dtype="datetime64[s]"), at(5), 10, 30, 60, budget=1),
    lambda: threshold_for_episode_budget([1.0, np.nan], at(0, 10), at(5), 10, 30, 60, budget=1),
])
def test_user_mistakes_are_user_errors(call):
    with pytest.raises(UserError):
        call()


def test_importing_episodes_loads_no_heavy_module(heavy_imports):
    code = "import lstm_rare_event.alarms.episodes\nimport sys\nassert 'pandas' not in sys.modules"
    assert heavy_imports(code) == []

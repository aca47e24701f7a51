"""Alarm episodes measured: breaks warned and missed, false episodes per day, and thresholds
chosen for an episode budget.

Windows are flagged and episodes numbered by the alarm rule (:mod:`lstm_rare_event.alarms.rule`);
here they are measured against the breaks.

An episode **warns** of a break when it starts within ``horizon_minutes`` before it
(``break - horizon <= start < break``); an episode that warns of no break is a false alarm.

NumPy only (no scikit-learn, TensorFlow or pandas): ``score`` imports this and must start fast.
"""

from __future__ import annotations

import math

import numpy as np

from lstm_rare_event.alarms.metrics import candidate_thresholds, days_covered
from lstm_rare_event.alarms.rule import DEFAULT_MERGE_MINUTES, Episodes, number_episodes
from lstm_rare_event.errors import UserError

def _times(end_time) -> np.ndarray:
    """``end_time`` as datetime64[s], refused when out of order or missing: episodes follow
    the windows in time."""
    t = np.asarray(end_time).astype("datetime64[s]")
    if t.ndim != 1:
        raise ValueError(f"end_time must be a vector, got shape {t.shape}")
    if np.isnat(t).any():
        raise UserError(f"end_time has {int(np.isnat(t).sum())} missing times; every window needs an end time")
    if t.size > 1 and (np.diff(t) < np.timedelta64(0, "s")).any():
        row = int(np.flatnonzero(np.diff(t) < np.timedelta64(0, "s"))[0]) + 1
        raise UserError(f"end_time must be ascending; window {row} ends at {t[row]}, before window {row - 1}")
    return t


def _break_times(break_times) -> np.ndarray:
    b = np.asarray(break_times).astype("datetime64[s]").ravel()
    if np.isnat(b).any():
        raise UserError("break times have missing values (NaT)")
    return b


def _minutes(value, name: str, positive: bool = False) -> float:
    """A duration option in minutes: finite and >= 0 (> 0 where ``positive``)."""
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise UserError(f"--{name} {value:g}: expected minutes {'> 0' if positive else '>= 0'}")
    return value


def _seconds(t: np.ndarray) -> np.ndarray:
    """Seconds since the epoch, int64: exact, and cheap to compare with a float horizon."""
    return t.astype(np.int64)


def find_episodes(end_time, flags, merge_minutes: float = DEFAULT_MERGE_MINUTES) -> Episodes:
    """The alarm episodes of the windows flagged in ``flags`` (N,), scored at ``end_time`` (N,)."""
    t = _times(end_time)
    flags = np.asarray(flags, dtype=bool)
    if flags.shape != t.shape:
        raise ValueError(f"end_time {t.shape} and flags {flags.shape} must be two equal-length vectors")
    return number_episodes(t, flags, _minutes(merge_minutes, "merge-minutes"))


def _warns(starts: np.ndarray, sorted_breaks: np.ndarray, horizon_seconds: float) -> np.ndarray:
    """True where an episode starting at ``starts`` (int64 seconds) would warn of a break:
    the first break after the start is at most the horizon after it."""
    nxt = np.searchsorted(sorted_breaks, starts, side="right")
    has = nxt < sorted_breaks.size
    warns = np.zeros(starts.shape, dtype=bool)
    warns[has] = sorted_breaks[nxt[has]] - starts[has] <= horizon_seconds
    return warns


def warned_breaks(episodes: Episodes, break_times, horizon_minutes: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(warned (B,) bool, lead_minutes (B,) float, false (E,) bool) for the breaks at ``break_times``.

    A break is warned when an episode starts within the horizon before it; its lead time is
    the break time minus the start of the earliest such episode, NaN when not warned. The
    breaks stay in the order given, one result per entry (pass distinct breaks). ``false``
    marks the episodes that warn of no break.
    """
    horizon = _minutes(horizon_minutes, "horizon-minutes", positive=True) * 60
    b = _seconds(_break_times(break_times))
    starts = _seconds(np.asarray(episodes.start).astype("datetime64[s]"))
    # The earliest episode starting at or after break - horizon; it warns if it starts before the break.
    first = np.searchsorted(starts, b - horizon, side="left")
    has = first < starts.size
    warned = np.zeros(b.shape, dtype=bool)
    warned[has] = starts[first[has]] < b[has]
    lead = np.full(b.shape, np.nan)
    lead[warned] = (b[warned] - starts[first[warned]]) / 60
    false = ~_warns(starts, np.sort(b), horizon)
    return warned, lead, false


def episode_metrics(end_time, flags, break_times, interval_minutes: float, merge_minutes: float,
                    horizon_minutes: float) -> dict:
    """The alarms as episodes: breaks warned and missed, lead times, false episodes per day.

    JSON-ready; undefined values (a share with no break, a lead with no warning, a rate with
    no data) are NaN, written as null. Days are windows * interval, as in :mod:`metrics`.
    """
    episodes = find_episodes(end_time, flags, merge_minutes)
    b = _break_times(break_times)
    warned, lead, false = warned_breaks(episodes, b, horizon_minutes)
    days = days_covered(len(episodes.number), interval_minutes)
    leads = lead[warned]
    return {
        "merge_minutes": float(merge_minutes),
        "horizon_minutes": float(horizon_minutes),
        "n_breaks": int(b.size),
        "warned": int(warned.sum()),
        "missed": int(b.size - warned.sum()),
        "warned_share": float(warned.mean()) if b.size else float("nan"),
        "mean_lead_minutes": float(np.mean(leads)) if leads.size else float("nan"),
        "median_lead_minutes": float(np.median(leads)) if leads.size else float("nan"),
        "episodes": len(episodes),
        "false_episodes": int(false.sum()),
        "days": float(days),
        "false_episodes_per_day": int(false.sum()) / days if days else float("nan"),
        "breaks": [{"event_time": str(when), "warned": bool(w), "lead_minutes": float(m) if w else None}
                   for when, w, m in zip(b, warned, lead)],
    }


def _scores(scores, n: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n,):
        raise ValueError(f"scores {scores.shape} and end_time ({n},) must be two equal-length vectors")
    if not np.isfinite(scores).all():
        raise UserError(f"{int((~np.isfinite(scores)).sum())} scores are not finite numbers")
    return scores


def false_episodes_by_cut(scores, end_time, break_times, merge_minutes: float, horizon_minutes: float,
                          cuts: np.ndarray) -> np.ndarray:
    """False episodes (int64) at each threshold of ``cuts`` (ascending), in one sweep.

    A NumPy pass per threshold would be O(N) each and O(N^2) over every candidate (20,000
    windows give 20,000 candidates). Instead: flag the windows above the lowest cut, link the
    flagged windows in time order, then raise the threshold cut by cut, unlinking each window
    as it stops being flagged. An episode's warning depends only on its start, so whether a
    flagged window would be a false start is precomputed; unlinking window i only changes
    whether i and its next flagged window open an episode, an O(1) update of the count. One
    Python step per window: O(N log N) in all (the sort), under 0.1 s for 20,000 windows.
    """
    t = _seconds(_times(end_time))
    scores = _scores(scores, t.size)
    merge_minutes = _minutes(merge_minutes, "merge-minutes")
    merge = merge_minutes * 60
    horizon = _minutes(horizon_minutes, "horizon-minutes", positive=True) * 60
    cuts = np.asarray(cuts, dtype=np.float64)
    counts = np.zeros(cuts.size, dtype=np.int64)
    if cuts.size == 0 or t.size == 0:
        return counts
    if (np.diff(cuts) < 0).any():
        raise ValueError("cuts must be ascending")
    # Window w is flagged at cuts[k] for k < level[w] (score > cut), and at none from level[w] on.
    level = np.searchsorted(cuts, scores, side="left")
    false_start = ~_warns(t, np.sort(_seconds(_break_times(break_times))), horizon)

    flagged = np.flatnonzero(level > 0)
    count = int(np.sum(number_episodes(t.astype("datetime64[s]"), level > 0, merge_minutes).opened & false_start))
    prev = np.full(t.size, -1, dtype=np.int64)
    nxt = np.full(t.size, -1, dtype=np.int64)
    prev[flagged[1:]] = flagged[:-1]
    nxt[flagged[:-1]] = flagged[1:]

    # Plain lists: element access in the loop is several times faster than on arrays.
    ts, fs, prev, nxt = t.tolist(), false_start.tolist(), prev.tolist(), nxt.tolist()
    order = np.argsort(level, kind="stable")
    lv = level[order]
    bounds = np.searchsorted(lv, np.arange(cuts.size + 1), side="left").tolist()
    order = order.tolist()
    counts[0] = count
    for k in range(1, cuts.size):
        for i in order[bounds[k]:bounds[k + 1]]:  # the windows no longer flagged at cuts[k]
            p, n = prev[i], nxt[i]
            if fs[i] and (p < 0 or ts[i] - ts[p] >= merge):
                count -= 1
            if n >= 0 and fs[n]:
                was = ts[n] - ts[i] >= merge
                now = p < 0 or ts[n] - ts[p] >= merge
                count += now - was
            if p >= 0:
                nxt[p] = n
            if n >= 0:
                prev[n] = p
        counts[k] = count
    return counts


def _check_budget(budget) -> float:
    budget = float(budget)
    if not math.isfinite(budget) or budget < 0:
        raise UserError(f"--budget {budget:g}: expected false episodes per day >= 0")
    return budget


def threshold_for_episode_budget(scores, end_time, break_times, interval_minutes: float, merge_minutes: float,
                                 horizon_minutes: float, budget: float) -> float:
    """The lowest threshold at which, and at every higher candidate, false episodes per day
    stay within ``budget``.

    Candidates cut midway between neighbouring distinct scores (:func:`candidate_thresholds`).
    Not a search for the lowest threshold within budget anywhere: false episodes are not
    monotonic in the threshold (a lower one can merge two false episodes into one), and an
    operator lowering the threshold from "no alarm" would meet the violation first. So the
    scan goes from the highest candidate (nothing flagged) down and stops at the first one
    over budget, returning the candidate just above it.
    """
    budget = _check_budget(budget)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise UserError("no windows to choose a threshold on")
    cuts = candidate_thresholds(_scores(scores, scores.size))
    counts = false_episodes_by_cut(scores, end_time, break_times, merge_minutes, horizon_minutes, cuts)
    days = days_covered(scores.size, interval_minutes)
    # The tolerance keeps an exact ratio such as 3 episodes / 3 days from rounding over 1.
    over = np.flatnonzero(counts / days > budget + 1e-9)
    return float(cuts[over.max() + 1] if over.size else cuts[0])


def warning_curve(scores, end_time, break_times, interval_minutes: float, merge_minutes: float,
                  horizon_minutes: float, n_points: int = 50) -> dict:
    """Warned share of breaks against false episodes per day, for a figure.

    Thresholds at ``n_points`` quantiles of the scores, ascending: the smallest score, then
    from the median up, spaced geometrically in the share left unflagged so that they crowd
    towards the top, then the largest (none flagged); ties between quantiles are dropped, so
    there may be fewer points. Arrays "thresholds", "false_episodes_per_day" and
    "warned_share" (NaN with no break), all empty with no window.
    """
    if int(n_points) < 2:
        raise ValueError(f"n_points must be at least 2, got {n_points}")
    t = _times(end_time)
    scores = _scores(scores, t.size)
    if scores.size == 0:
        empty = np.zeros(0)
        return {"thresholds": empty, "false_episodes_per_day": empty.copy(), "warned_share": empty.copy()}
    # Quantiles crowd towards the top, where a plant's operating points are: at low thresholds
    # alarms merge into day-long episodes that warn of nothing.
    top = np.geomspace(1.0 / max(scores.size, 2), 0.5, int(n_points) - 2)
    thresholds = np.unique(np.quantile(scores, np.concatenate([[0.0], 1.0 - top, [1.0]])))
    days = days_covered(scores.size, interval_minutes)
    per_day, share = [], []
    for cut in thresholds:
        m = episode_metrics(t, scores > cut, break_times, interval_minutes, merge_minutes, horizon_minutes)
        per_day.append(m["false_episodes"] / days)
        share.append(m["warned_share"])
    return {"thresholds": thresholds, "false_episodes_per_day": np.array(per_day), "warned_share": np.array(share)}

"""The alarms of interval-labelled data (``--labels intervals``), and chance for any alarm.

With interval labels every labelled row is anomalous, so the alarms are judged point-wise
(each window by the label of the row it ends at) and per **interval**: a run of consecutive
labelled windows in the scored sequence (a gap in the data does not split a run). An interval
is **detected** when at least one of its windows is flagged; its **delay** is the time from
its first window to its first flagged window (0 when the first is flagged).

Every event-level figure (intervals detected, breaks warned) is shown beside **chance**: the
same alarms shifted in time, so that they keep their number, lengths and spacing but lose
any link to the labels. The flag sequence is rotated circularly by :data:`CHANCE_SHIFTS`
offsets evenly spaced over its length, and the figure averaged over them. An alarm that is on
most of the time "detects" most intervals by chance too; hence also the **alarm on-time**:
the share of windows flagged.

NumPy only.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# Rotations of the flags that chance averages over.
CHANCE_SHIFTS = 100

_MINUTE = np.timedelta64(60, "s")


def runs(labels) -> tuple[np.ndarray, np.ndarray]:
    """(starts, stops) of the runs of 1 in ``labels``: window indexes, ``stops`` exclusive."""
    y = np.asarray(labels).astype(bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], y, [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def point_metrics(y, flags) -> dict:
    """Precision, recall, F1, false alarm rate FP / (FP + TN) and missed alarm rate
    FN / (FN + TP) of the flags, window by window; NaN where a denominator is 0."""
    y, flags = np.asarray(y).astype(bool), np.asarray(flags).astype(bool)
    return counted_metrics(int(np.sum(y & flags)), int(np.sum(~y & flags)), int(np.sum(y & ~flags)),
                           int(np.sum(~y & ~flags)))


def counted_metrics(tp: int, fp: int, fn: int, tn: int) -> dict:
    """:func:`point_metrics` from the four counts of a confusion matrix."""
    def ratio(a, b):
        return a / b if b else float("nan")

    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn), "far": ratio(fp, fp + tn), "mar": ratio(fn, fn + tp)}


def detected(y, flags) -> tuple[np.ndarray, np.ndarray]:
    """(detected (I,) bool, first flagged window (I,) int, -1 when none) per interval of ``y``."""
    starts, stops = runs(y)
    flags = np.asarray(flags, dtype=bool)
    flagged = np.flatnonzero(flags)
    # The first flagged window at or after each start; the interval is detected if it is before the stop.
    nxt = np.searchsorted(flagged, starts, side="left")
    first = np.full(starts.shape, -1, dtype=np.int64)
    has = nxt < flagged.size
    first[has] = flagged[nxt[has]]
    hit = has & (first < stops)
    first[~hit] = -1
    return hit, first


def detected_share(y, flags) -> float:
    hit, _ = detected(y, flags)
    return float(hit.mean()) if hit.size else float("nan")


def chance(figure: Callable[[np.ndarray], float], flags, shifts: int = CHANCE_SHIFTS) -> float:
    """The mean of ``figure(rotated flags)`` over ``shifts`` rotations evenly spaced over the
    series (never by 0): what the same alarms would score at random times; NaN for no window."""
    flags = np.asarray(flags, dtype=bool)
    n = flags.size
    if n < 2:
        return float("nan")
    offsets = np.unique(np.linspace(0, n, shifts + 2)[1:-1].astype(np.int64))
    offsets = offsets[(offsets > 0) & (offsets < n)]
    values = [figure(np.roll(flags, int(k))) for k in offsets]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def on_share(flags) -> float:
    """The share of windows flagged: how much of the time the alarm is on."""
    flags = np.asarray(flags, dtype=bool)
    return float(flags.mean()) if flags.size else float("nan")


def interval_metrics(y, flags, end_time) -> dict:
    """The alarms ``flags`` (N,) on interval labels ``y`` (N,), windows ending at ``end_time``:
    point-wise metrics, intervals detected beside chance and the alarm on-time, and the delay
    from each interval's start to its first flag (minutes). JSON-ready; undefined values NaN."""
    y, flags = np.asarray(y).astype(bool), np.asarray(flags, dtype=bool)
    t = np.asarray(end_time).astype("datetime64[s]")
    if not (y.shape == flags.shape == t.shape) or y.ndim != 1:
        raise ValueError(f"y {y.shape}, flags {flags.shape} and end_time {t.shape} must be equal-length vectors")
    starts, _ = runs(y)
    hit, first = detected(y, flags)
    delays = (t[first[hit]] - t[starts[hit]]) / _MINUTE
    return {
        **point_metrics(y, flags),
        "n_intervals": int(starts.size),
        "detected": int(hit.sum()),
        "detected_share": float(hit.mean()) if hit.size else float("nan"),
        "detected_share_chance": chance(lambda f: detected_share(y, f), flags),
        "alarm_on_share": on_share(flags),
        "mean_delay_minutes": float(np.mean(delays)) if delays.size else float("nan"),
        "median_delay_minutes": float(np.median(delays)) if delays.size else float("nan"),
        "intervals": [{"start": str(t[s]), "windows": int(stop - s), "detected": bool(h),
                       "delay_minutes": float((t[f] - t[s]) / _MINUTE) if h else None}
                      for s, stop, h, f in zip(starts, runs(y)[1], hit, first)],
    }

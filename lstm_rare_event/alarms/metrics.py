"""How good the alarms are: per window (scikit-learn) and per break event (what an operator sees).

scikit-learn is imported inside the functions that use it: importing it costs over a second,
and ``score`` needs only the NumPy parts of this module (and of :mod:`thresholds`, which uses
:func:`windows_per_day`).
"""

from __future__ import annotations

import numpy as np

MINUTES_PER_DAY = 1440


def windows_per_day(interval_minutes: float) -> float:
    """Windows in a day of data: one window ends at every row, one row per interval."""
    return MINUTES_PER_DAY / interval_minutes


def candidate_thresholds(errors: np.ndarray) -> np.ndarray:
    """Every distinct way to cut ``errors``, ascending: midway between neighbouring distinct
    errors, from below the smallest (all flagged) to the largest itself (none flagged).

    Errors are squared, so never negative, and zero is the floor: a perfectly reconstructed
    window is never an alarm.
    """
    edges = np.unique(np.concatenate([[0.0], errors]))
    return np.append((edges[:-1] + edges[1:]) / 2, edges[-1])


def days_covered(n_windows: int, interval_minutes: float) -> float:
    return n_windows / windows_per_day(interval_minutes)


def false_alarms_per_day(flags, y, interval_minutes: float) -> float:
    """Flagged normal windows per day of data (NaN for no windows)."""
    flags, y = np.asarray(flags, dtype=bool), np.asarray(y)
    days = days_covered(len(y), interval_minutes)
    return int(np.sum(flags & (y == 0))) / days if days else float("nan")


def _both_classes(y) -> bool:
    return 0 < int(np.sum(y)) < len(y)


def window_metrics(y, flags, errors=None) -> dict:
    """Confusion matrix, precision, recall, F1 and false-positive rate of the alarms ``flags``;
    with ``errors``, also ROC-AUC and PR-AUC (average precision) of the error as a score.

    A metric whose denominator is zero (precision with no alarm, recall with no positive, AUCs
    with one class) is NaN, written as null in JSON: undefined, not zero.
    """
    from sklearn import metrics as skm

    y = np.asarray(y).astype(int)
    flags = np.asarray(flags).astype(int)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y, flags, labels=[0, 1]).ravel())
    result = {
        "n_windows": len(y),
        "n_positive": tp + fn,
        "base_rate": (tp + fn) / len(y) if len(y) else float("nan"),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "precision": float(skm.precision_score(y, flags, zero_division=np.nan)),
        "recall": float(skm.recall_score(y, flags, zero_division=np.nan)),
        "f1": float(skm.f1_score(y, flags, zero_division=np.nan)),
        "false_positive_rate": fp / (fp + tn) if fp + tn else float("nan"),
    }
    if errors is not None:
        both = _both_classes(y)
        result["roc_auc"] = float(skm.roc_auc_score(y, errors)) if both else float("nan")
        result["pr_auc"] = float(skm.average_precision_score(y, errors)) if both else float("nan")
    return result


def curves(y, errors) -> dict | None:
    """ROC (fpr, tpr) and precision-recall curves of the error as a score; None with one class."""
    from sklearn import metrics as skm

    y = np.asarray(y).astype(int)
    if not _both_classes(y):
        return None
    fpr, tpr, _ = skm.roc_curve(y, errors)
    precision, recall, _ = skm.precision_recall_curve(y, errors)
    return {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall}


def break_times(y, event_time) -> np.ndarray:
    """The distinct breaks, ascending: the event times of the positive windows."""
    y, event_time = np.asarray(y), np.asarray(event_time)
    return np.unique(event_time[(y == 1) & ~np.isnat(event_time)])


def event_metrics(flags, y, end_time, event_time, interval_minutes: float) -> dict:
    """The alarms seen per break rather than per window.

    A break is a distinct ``event_time`` among the positive windows; it is caught when at least
    one of its positive windows is flagged, and its lead time is the break's time minus the end
    of the earliest flagged positive window. False alarms are flagged normal windows.
    """
    flags, y = np.asarray(flags, dtype=bool), np.asarray(y)
    end_time, event_time = np.asarray(end_time), np.asarray(event_time)
    breaks = []
    for when in break_times(y, event_time):
        members = (y == 1) & (event_time == when)
        flagged = members & flags
        lead = float((when - end_time[flagged].min()) / np.timedelta64(1, "m")) if flagged.any() else None
        breaks.append({"event_time": str(when), "windows": int(members.sum()), "flagged": int(flagged.sum()),
                       "lead_minutes": lead})
    leads = [b["lead_minutes"] for b in breaks if b["lead_minutes"] is not None]
    return {
        "n_breaks": len(breaks),
        "caught": len(leads),
        "missed": len(breaks) - len(leads),
        "mean_lead_minutes": float(np.mean(leads)) if leads else float("nan"),
        "false_alarms": int(np.sum(flags & (y == 0))),
        "days": days_covered(len(y), interval_minutes),
        "false_alarms_per_day": false_alarms_per_day(flags, y, interval_minutes),
        "breaks": breaks,
    }

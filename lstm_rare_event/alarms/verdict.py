"""The verdict: what an engineer should conclude from a detector's results, in plain words.

Pure functions of numbers already measured (no files, no figures), shared by ``evaluate`` and
``backtest``, so both say the same thing the same way:

- **chance**: do the scores rank breaks better than chance? Yes when the bootstrap ROC-AUC
  interval (resampled by break event) lies wholly above 0.5, "worse" when wholly below,
  else "no better than chance".
- **budget**: with ``--rule alarms-per-day``, did the promised false alarm episodes per day
  hold on the data measured? Held within :data:`BUDGET_SLACK` times the promise.
- **warned**: how many breaks an alarm episode warned of, and how early, beside chance (the
  same alarms shifted in time) and the share of time the alarm is on.
- **detected** (interval labels): how many anomaly intervals a flag fell in, and how late,
  beside chance and the alarm's on-time, with the point-wise F1, FAR and MAR.
- **reference**: with another detector's scores on the same windows, does this one beat it?
  Yes when the paired ROC-AUC difference interval lies wholly above 0.
- **drift**: a warning when the validation loss is far above the training loss
  (:data:`DRIFT_RATIO` times), naming the sensors whose mean moved most between the periods.

:func:`verdict` returns a JSON-ready dict with the conclusions and their ``lines``.
"""

from __future__ import annotations

import math

# The budget holds while the measured false episodes per day stay within this many times the promise.
BUDGET_SLACK = 1.5
# Validation loss more than this many times the training loss: the periods differ (drift).
DRIFT_RATIO = 2.0
# Sensors named in the drift warning.
DRIFT_SENSORS = 3
CHANCE = 0.5


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def _n(value, digits: int = 2) -> str:
    if not _finite(value):
        return "n/a"
    return f"{value:.{digits}g}" if abs(value) < 10 else f"{value:.0f}"


def interval(i: dict) -> str:
    """``0.631 [0.521, 0.732]``: an estimate with its interval."""
    return f"{i['estimate']:.3f} [{i['low']:.3f}, {i['high']:.3f}]"


def chance(roc: dict | None) -> dict | None:
    """``roc``: a bootstrap interval {"estimate", "low", "high"} of the ROC-AUC (or None)."""
    if roc is None or not all(_finite(roc.get(k)) for k in ("estimate", "low", "high")):
        return None
    if roc["low"] > CHANCE:
        answer, text = True, f"ranks breaks better than chance: ROC-AUC {interval(roc)}, above {CHANCE}"
    elif roc["high"] < CHANCE:
        answer, text = False, f"ranks breaks worse than chance: ROC-AUC {interval(roc)}, below {CHANCE}"
    else:
        answer, text = False, f"ranks breaks no better than chance: ROC-AUC {interval(roc)} includes {CHANCE}"
    return {"better_than_chance": answer, "roc_auc": dict(roc), "text": text}


def budget(promised: float | None, measured: float | None) -> dict | None:
    """False alarm episodes per day: ``promised`` (the rule's target; None for other rules) and
    ``measured`` on the data judged."""
    if promised is None:
        return None
    held = _finite(measured) and measured <= BUDGET_SLACK * promised
    ratio = measured / promised if _finite(measured) and promised > 0 else None
    if not _finite(measured):
        text = f"alarm budget not measured (promised {promised:g} false alarms/day)"
    elif held:
        text = f"alarm budget held: {_n(measured)} false alarms/day against {promised:g} promised"
    else:
        times = f" ({_n(ratio)}x)" if ratio is not None else ""
        text = f"alarm budget broken: {_n(measured)} false alarms/day against {promised:g} promised{times}"
    return {"promised": float(promised), "measured": measured if _finite(measured) else None,
            "ratio": ratio, "held": bool(held), "slack": BUDGET_SLACK, "text": text}


def _against_chance(share, by_chance, on_share) -> str:
    """`` (chance 12%, alarm on 3% of the time)``, or nothing when not measured."""
    if not (_finite(by_chance) and _finite(on_share)):
        return ""
    return f" (chance {by_chance:.0%}, alarm on {on_share:.0%} of the time)"


def warned(episodes: dict, chance_: dict | None = None) -> dict:
    """From :func:`lstm_rare_event.alarms.episodes.episode_metrics`: breaks warned and how early;
    ``chance_`` (:func:`lstm_rare_event.alarms.evaluation.warned_chance`): beside chance."""
    n, k = int(episodes["n_breaks"]), int(episodes["warned"])
    horizon = episodes["horizon_minutes"]
    mean, median = episodes.get("mean_lead_minutes"), episodes.get("median_lead_minutes")
    if n == 0:
        text = "no break to warn of"
    elif k == 0:
        text = f"warned 0 of {n} breaks (an alarm episode starting at most {horizon:g} min before)"
    else:
        text = (f"warned {k} of {n} breaks {horizon:g} min ahead, on average {_n(mean)} min before "
                f"(median {_n(median)})")
    if n and chance_:
        text += _against_chance(chance_.get("warned_share"), chance_.get("warned_share_chance"),
                                chance_.get("alarm_on_share"))
    return {"warned": k, "n_breaks": n, "horizon_minutes": horizon,
            "mean_lead_minutes": mean if _finite(mean) else None,
            "median_lead_minutes": median if _finite(median) else None, "text": text}


def detected(intervals: dict) -> dict:
    """From :func:`lstm_rare_event.alarms.intervals.interval_metrics`: intervals detected beside
    chance, how late, and the point-wise F1, FAR and MAR."""
    n, k = int(intervals["n_intervals"]), int(intervals["detected"])
    if n == 0:
        text = "no anomaly interval to detect"
    else:
        text = f"detected {k} of {n} anomaly intervals"
        if k:
            text += (f", {_n(intervals['mean_delay_minutes'])} min after their start on average "
                     f"(median {_n(intervals['median_delay_minutes'])})")
        text += _against_chance(intervals["detected_share"], intervals["detected_share_chance"],
                                intervals["alarm_on_share"])
    text += (f"; point-wise F1 {_n(intervals['f1'])}, false alarm rate {_n(intervals['far'])}, "
             f"missed alarm rate {_n(intervals['mar'])}")
    return {"detected": k, "n_intervals": n, "text": text}


def reference(name: str, difference: dict) -> dict:
    """``difference``: the paired bootstrap interval of ROC-AUC (this detector minus ``name``)."""
    low, high = difference["low"], difference["high"]
    shown = f"paired ROC-AUC difference {interval(difference)}"
    if low > 0:
        beats, text = True, f"beats {name}: {shown}, above 0"
    elif high < 0:
        beats, text = False, f"worse than {name}: {shown}, below 0"
    else:
        beats, text = False, f"no different from {name}: {shown} includes 0"
    return {"name": name, "beats": beats, "worse": bool(high < 0), "difference": dict(difference), "text": text}


def drift(train_loss: float | None, val_loss: float | None, shifts: dict | None = None) -> dict | None:
    """A warning when ``val_loss`` > DRIFT_RATIO x ``train_loss``; ``shifts``: sensor -> shift of
    its mean between the periods, in training standard deviations (the largest are named)."""
    if not (_finite(train_loss) and _finite(val_loss)) or train_loss <= 0:
        return None
    ratio = val_loss / train_loss
    if ratio <= DRIFT_RATIO:
        return None
    top = sorted((shifts or {}).items(), key=lambda kv: -abs(kv[1]))[:DRIFT_SENSORS]
    named = ", ".join(f"{name} ({value:+.1f} SD)" for name, value in top)
    text = (f"validation loss is {ratio:.1f}x the training loss: the validation period differs from the "
            "training period (drift)")
    if named:
        text += f"; the sensors that moved most: {named}"
    return {"train_loss": float(train_loss), "val_loss": float(val_loss), "ratio": float(ratio),
            "sensors": [{"sensor": name, "shift_sd": float(value)} for name, value in top], "text": text}


def verdict(*, roc: dict | None = None, promised: float | None = None, measured: float | None = None,
            episodes: dict | None = None, references: dict | None = None, drift_: dict | None = None,
            name: str = "", warned_chance: dict | None = None, intervals: dict | None = None) -> dict:
    """The conclusions and their plain ``lines`` (one or two, then a warning line on drift).

    ``references``: {reference name: paired ROC-AUC difference interval, this minus it};
    ``warned_chance``: breaks warned by the alarms shifted in time and the alarm's on-time;
    ``intervals``: interval metrics (interval labels), said instead of breaks warned.
    """
    parts = {
        "chance": chance(roc),
        "budget": budget(promised, measured),
        "warned": warned(episodes, warned_chance) if episodes is not None and intervals is None else None,
        "references": [reference(other, diff) for other, diff in (references or {}).items()],
        "drift": drift_,
    }
    if intervals is not None:
        parts["detected"] = detected(intervals)
    first = [p["text"] for p in (parts["chance"], *parts["references"]) if p]
    second = [p["text"] for p in (parts["warned"], parts.get("detected"), parts["budget"]) if p]
    prefix = f"{name}: " if name else ""
    lines = []
    if first:
        lines.append(prefix + _sentence("; ".join(first)))
    if second:
        lines.append(("" if lines else prefix) + _sentence("; ".join(second)))
    if drift_:
        lines.append("Warning: " + drift_["text"] + ".")
    return {**parts, "lines": lines}


def one_line(v: dict, name: str) -> str:
    """The verdict on one line for a table of detectors (backtest): warned, budget, chance, references."""
    parts = [p["text"] for p in (v["warned"], v.get("detected"), v["budget"], v["chance"], *v["references"]) if p]
    return f"{name}: " + "; ".join(parts)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def sensor_shifts(train_last, valid_last, features) -> dict:
    """Shift of each sensor's mean from the training rows to the validation rows, in training
    standard deviations (``*_last``: (N, F) scaled last rows of normal windows)."""
    import numpy as np

    train_last, valid_last = np.asarray(train_last, dtype=float), np.asarray(valid_last, dtype=float)
    if train_last.size == 0 or valid_last.size == 0:
        return {}
    sd = train_last.std(axis=0)
    shift = (valid_last.mean(axis=0) - train_last.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return {str(name): float(value) for name, value in zip(features, shift) if np.isfinite(value)}

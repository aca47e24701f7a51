"""Alarm threshold rules: where to cut the reconstruction error, chosen on validation.

A window raises an alarm when its error is strictly above the threshold (:func:`flag`). Each
rule is a small function of the validation errors and labels; the rules that look at the
labels cut midway between two neighbouring errors, so that the same windows are flagged when
an error is recomputed with a slightly different rounding (the NumPy and Keras engines).

NumPy only (no scikit-learn): ``score`` reads the threshold on every call and must start fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from lstm_rare_event.run import read_json
from lstm_rare_event.errors import UserError
from lstm_rare_event.alarms.metrics import windows_per_day
from lstm_rare_event.reconstruction import ERROR_MODES

THRESHOLD_JSON = "threshold.json"


def flag(errors: np.ndarray, threshold: float) -> np.ndarray:
    """True where a window raises an alarm: error strictly above the threshold (the recipe's)."""
    return np.asarray(errors) > threshold


def candidate_thresholds(errors: np.ndarray) -> np.ndarray:
    """Every distinct way to cut ``errors``, ascending: midway between neighbouring distinct
    errors, from below the smallest (all flagged) to the largest itself (none flagged).

    Errors are squared, so never negative, and zero is the floor: a perfectly reconstructed
    window is never an alarm.
    """
    edges = np.unique(np.concatenate([[0.0], errors]))
    return np.append((edges[:-1] + edges[1:]) / 2, edges[-1])


def alarm_counts(errors: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true alarms, false alarms) at each threshold: flagged positive and normal windows."""
    positive = np.sort(errors[labels == 1])
    normal = np.sort(errors[labels == 0])
    tp = positive.size - np.searchsorted(positive, thresholds, side="right")
    fp = normal.size - np.searchsorted(normal, thresholds, side="right")
    return tp, fp


def precision_recall_by_threshold(errors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, precision, recall) at every candidate threshold; NaN where undefined
    (precision when nothing is flagged, recall when there are no positives)."""
    errors, labels = np.asarray(errors, dtype=np.float64), np.asarray(labels)
    cuts = candidate_thresholds(errors)
    tp, fp = alarm_counts(errors, labels, cuts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return cuts, tp / (tp + fp), tp / np.sum(labels == 1)


# The rules. Each takes (errors, labels, interval_minutes, **its parameters) -> threshold.


def by_value(errors, labels, interval_minutes, value: float) -> float:
    """The recipe: a fixed value (0.3 there, read off the validation precision/recall plot)."""
    return float(value)


def max_f(errors, labels, interval_minutes, beta: float) -> float:
    """The threshold with the best validation F-beta (beta > 1 favours recall)."""
    cuts = candidate_thresholds(errors)
    tp, fp = alarm_counts(errors, labels, cuts)
    fn = np.sum(labels == 1) - tp
    b2 = beta**2
    # F-beta from counts; the denominator is never 0 as there is at least one positive.
    score = (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp)
    # On a tie, the highest threshold: the same score for the fewest alarms.
    best = len(score) - 1 - int(np.argmax(score[::-1]))
    return float(cuts[best])


def by_recall(errors, labels, interval_minutes, target: float) -> float:
    """The highest threshold whose validation recall reaches ``target``."""
    cuts = candidate_thresholds(errors)
    tp, _ = alarm_counts(errors, labels, cuts)
    reached = tp / np.sum(labels == 1) >= target
    if not reached.any():
        raise UserError(f"--target {target}: no threshold reaches that recall (some positives have zero error)")
    return float(cuts[reached].max())


def alarms_per_day(errors, labels, interval_minutes, target: float) -> float:
    """The quantile of the normal validation errors that flags at most ``target`` false
    alarms per day, a day being 1440 / interval_minutes windows (one window per row)."""
    normal = np.sort(errors[labels == 0])
    if normal.size == 0:
        raise UserError("--rule alarms-per-day needs normal windows in the validation split and it has none; "
                        "use --rule value")
    # The tolerance keeps an exact product such as 720 * 1 / 720 from rounding down to 0.
    allowed = min(math.floor(target * normal.size / windows_per_day(interval_minutes) + 1e-9), normal.size)
    # Cut midway between the (allowed+1)-th and the allowed-th largest error: with 0 below and
    # the largest repeated above, this also covers "flag all" and "flag none".
    edges = np.concatenate([[0.0], normal, normal[-1:]])
    k = normal.size - allowed
    return float((edges[k] + edges[k + 1]) / 2)


def median_positive(errors, labels, interval_minutes) -> float:
    """The author's book: the median error of the validation positives (about half caught)."""
    return float(np.median(errors[labels == 1]))


@dataclass(frozen=True)
class Param:
    default: float
    valid: Callable[[float], bool]
    expected: str


@dataclass(frozen=True)
class Rule:
    choose: Callable[..., float]
    params: dict[str, Param]
    needs_positives: bool


RULES = {
    "value": Rule(by_value, {"value": Param(0.3, lambda v: v >= 0, "a number >= 0")}, False),
    "max-f": Rule(max_f, {"beta": Param(1.0, lambda v: v > 0, "a number > 0")}, True),
    "recall": Rule(by_recall, {"target": Param(0.5, lambda v: 0 < v <= 1, "a recall in (0, 1]")}, True),
    "alarms-per-day": Rule(alarms_per_day, {"target": Param(1.0, lambda v: v >= 0, "alarms per day >= 0")}, False),
    "median-positive": Rule(median_positive, {}, True),
}


def resolve_params(rule: str, **params) -> dict:
    """The rule's parameters with defaults filled in; refuses unknown rules, parameters that
    do not apply to the rule, and values out of range."""
    if rule not in RULES:
        raise UserError(f"--rule {rule!r}: choose one of {', '.join(RULES)}")
    spec = RULES[rule].params
    for name in params:
        if name not in spec:
            takes = ", ".join(f"--{p}" for p in spec) or "no parameter"
            raise UserError(f"--{name} does not apply to --rule {rule} (it takes {takes})")
    resolved = {name: float(params.get(name, p.default)) for name, p in spec.items()}
    for name, value in resolved.items():
        if not (math.isfinite(value) and spec[name].valid(value)):
            raise UserError(f"--{name} {value:g} for --rule {rule}: expected {spec[name].expected}")
    return resolved


def choose_threshold(rule: str, errors, labels, interval_minutes: float, **params) -> float:
    """The threshold ``rule`` picks from validation ``errors`` (N,) and ``labels`` (N,) 0/1."""
    params = resolve_params(rule, **params)
    errors = np.asarray(errors, dtype=np.float64)
    labels = np.asarray(labels)
    if errors.ndim != 1 or errors.shape != labels.shape:
        raise ValueError(f"errors {errors.shape} and labels {labels.shape} must be two equal-length vectors")
    if errors.size == 0:
        raise UserError("no validation windows to choose a threshold on")
    check_labels(rule, labels)
    return RULES[rule].choose(errors, labels, interval_minutes, **params)


def check_labels(rule: str, labels) -> None:
    """Refuse a rule that needs positive windows when the validation labels have none."""
    if RULES[rule].needs_positives and not np.any(np.asarray(labels) == 1):
        raise UserError(f"--rule {rule} needs positive windows in the validation split and it has none; "
                        "use --rule alarms-per-day or --rule value")


def read_threshold(run_dir) -> dict:
    """threshold.json of ``run_dir``, checked for the two fields every later step uses."""
    path = Path(run_dir) / THRESHOLD_JSON
    data = read_json(path)
    value, error = data.get("value"), data.get("error")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise UserError(f"{path}: 'value' must be a number, got {value!r}; re-run threshold")
    if error not in ERROR_MODES:
        raise UserError(f"{path}: 'error' must be one of {', '.join(ERROR_MODES)}, got {error!r}; re-run threshold")
    return data

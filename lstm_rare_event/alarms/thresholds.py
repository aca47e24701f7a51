"""Alarm threshold rules: where to cut a detector's score, chosen on validation.

This is the one place to change how a threshold is chosen. A window raises an alarm when its
score is strictly above the threshold (:mod:`lstm_rare_event.alarms.rule`). Each rule is a small function of the
validation scores; the rules cut midway between two neighbouring scores, so that the same
windows are flagged when a score is recomputed with a slightly different rounding (the NumPy
and Keras engines).

The ``quantile`` and ``evt`` rules need no labels and no calendar: they read the distribution
of normal scores (the validation windows labelled 0, or every window of unlabelled data; or
the training windows' with ``on="train"``, both with ``on="fit"``), so they suit short
validation periods and data without labels.

NumPy only (no scikit-learn): ``score`` reads the threshold on every call and must start fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np

from lstm_rare_event.alarms import tail
from lstm_rare_event.alarms.episodes import threshold_for_episode_budget
from lstm_rare_event.alarms.rule import smoothing
from lstm_rare_event.alarms.metrics import candidate_thresholds, days_covered, windows_per_day
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.spans import gap_minutes, parse_gap


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


@dataclass(frozen=True)
class Scored:
    """Validation scores with what the rules may look at: labels, end times and breaks, the
    cadence, and how alarms are counted (episode merge gap and warning horizon, minutes);
    ``train_normal``: the scores of the normal training windows, for rules with ``on="train"``."""

    scores: np.ndarray
    y: np.ndarray
    end_time: np.ndarray
    break_times: np.ndarray
    interval_minutes: float
    merge_minutes: float
    horizon_minutes: float
    train_normal: np.ndarray | None = None

    def normal(self, on: str = "valid") -> np.ndarray:
        """The scores of the normal windows of validation (``on="valid"``), training, or both
        (``on="fit"``: every window the detector was fitted and validated on)."""
        valid = self.scores[self.y == 0]
        if on in ("train", "fit"):
            if self.train_normal is None:
                raise ValueError(f"on={on!r} needs Scored.train_normal")
            train = np.asarray(self.train_normal, dtype=np.float64)
            return train if on == "train" else np.concatenate([train, valid])
        return valid


# The rules. Each takes (scored, **its parameters) -> threshold.


def by_value(v: Scored, value: float) -> float:
    """The recipe: a fixed value (0.3 there, read off the validation precision/recall plot)."""
    return float(value)


def max_f(v: Scored, beta: float) -> float:
    """The threshold with the best validation F-beta (beta > 1 favours recall)."""
    cuts = candidate_thresholds(v.scores)
    tp, fp = alarm_counts(v.scores, v.y, cuts)
    fn = np.sum(v.y == 1) - tp
    b2 = beta**2
    # F-beta from counts; the denominator is never 0 as there is at least one positive.
    score = (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp)
    # On a tie, the highest threshold: the same score for the fewest alarms.
    best = len(score) - 1 - int(np.argmax(score[::-1]))
    return float(cuts[best])


def by_recall(v: Scored, target: float) -> float:
    """The highest threshold whose validation recall reaches ``target``."""
    cuts = candidate_thresholds(v.scores)
    tp, _ = alarm_counts(v.scores, v.y, cuts)
    reached = tp / np.sum(v.y == 1) >= target
    if not reached.any():
        raise UserError(f"--target {target:g}: no threshold reaches that recall (some positives have zero score)")
    return float(cuts[reached].max())


def alarms_per_day(v: Scored, target: float) -> float:
    """The lowest threshold at which, and above which, validation raises at most ``target``
    false alarm episodes per day (episodes that warn of no break within the horizon).

    On validation too short for the budget (:func:`extrapolates`), the threshold that a
    normal window exceeds with probability ``target`` / windows per day, from the tail of the
    normal validation scores: at most ``target`` flagged normal windows a day, so at most that
    many false episodes (fewer when flagged windows merge)."""
    if v.scores.size == 0:
        raise UserError("--rule alarms-per-day needs validation windows and there are none")
    if extrapolates(v, target):
        return budget_tail(v, target)[0]
    return threshold_for_episode_budget(v.scores, v.end_time, v.break_times, v.interval_minutes,
                                        v.merge_minutes, v.horizon_minutes, target)


def extrapolates(v: Scored, target: float) -> bool:
    """Whether ``alarms_per_day`` extrapolates: validation covers fewer days than 1 / ``target``,
    so counting its episodes would allow none and the threshold would be its maximum, and its
    normal scores are enough for a tail fit (else the maximum it is)."""
    return 0 < target * days_covered(v.scores.size, v.interval_minutes) < 1 and tail.fittable(v.normal())


def budget_tail(v: Scored, target: float) -> tuple[float, tail.Tail]:
    """(threshold, tail) for ``target`` false alarms per day from the normal validation scores' tail."""
    fitted = tail.fit_tail(v.normal(), "normal validation scores")
    return fitted.quantile(target / windows_per_day(v.interval_minutes)), fitted


def quantile(v: Scored, q: float, factor: float, on: str) -> float:
    """``factor`` times the ``q`` quantile of the normal scores (SKAB's notebooks: 1.5 x the 99th
    percentile; linear interpolation between neighbouring scores)."""
    normal = v.normal(on)
    if normal.size == 0:
        raise UserError(f"--rule quantile needs normal (y=0) {_split(on)} windows and there are none")
    return float(factor * np.quantile(normal, q))


def evt(v: Scored, risk: float, on: str) -> float:
    """The score a normal window exceeds with probability ``risk``, from a generalized Pareto
    fit to the tail of the normal scores (:mod:`tail`); it may lie beyond the largest score seen."""
    return tail.fit_tail(v.normal(on), f"normal {_split(on)} scores").quantile(risk)


def fitted_tail(rule: str, v: Scored, params: dict) -> dict | None:
    """What threshold.json says about a tail the rule fitted: {"tail": the fit, "note": why}
    (the note only where the rule did not do what its name says), or None without a fit."""
    if rule == "evt":
        return {"tail": tail.fit_tail(v.normal(params["on"]), f"normal {_split(params['on'])} scores").as_dict()}
    if rule == "alarms-per-day" and v.scores.size and extrapolates(v, params["target"]):
        value, fitted = budget_tail(v, params["target"])
        days = days_covered(v.scores.size, v.interval_minutes)
        return {"tail": fitted.as_dict(),
                "note": (f"validation covers {days:.3g} days, too short for a budget of {params['target']:g} false "
                         f"alarm episodes per day (no alarm allowed); the threshold {value:.6g} extrapolates the "
                         "budget from a generalized Pareto fit to the tail of the normal validation scores")}
    return None


def _split(on: str) -> str:
    return {"train": "training", "fit": "training and validation"}.get(on, "validation")


def median_positive(v: Scored) -> float:
    """The author's book: the median error of the validation positives (about half caught)."""
    return float(np.median(v.scores[v.y == 1]))


@dataclass(frozen=True)
class Param:
    """A rule's parameter: a number, or one of ``choices`` (then ``default`` is a string)."""

    default: float | str
    valid: Callable[[float], bool]
    expected: str
    choices: tuple[str, ...] = ()


# Where the distribution rules read the normal scores.
ON = Param("valid", lambda v: True, "valid, train or fit", ("valid", "train", "fit"))


@dataclass(frozen=True)
class Rule:
    choose: Callable[..., float]
    params: dict[str, Param]
    needs_positives: bool


RULES = {
    "value": Rule(by_value, {"value": Param(0.3, lambda v: v >= 0, "a number >= 0")}, False),
    "max-f": Rule(max_f, {"beta": Param(1.0, lambda v: v > 0, "a number > 0")}, True),
    "recall": Rule(by_recall, {"target": Param(0.5, lambda v: 0 < v <= 1, "a recall in (0, 1]")}, True),
    "alarms-per-day": Rule(alarms_per_day, {"target": Param(1.0, lambda v: v >= 0, "false alarm episodes per day >= 0")}, False),
    "median-positive": Rule(median_positive, {}, True),
    "quantile": Rule(quantile, {"q": Param(0.99, lambda v: 0 <= v <= 1, "a quantile in [0, 1]"),
                                "factor": Param(1.0, lambda v: v > 0, "a number > 0"), "on": ON}, False),
    "evt": Rule(evt, {"risk": Param(1e-4, lambda v: 0 < v < 1, "a probability in (0, 1)"), "on": ON}, False),
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
    resolved = {}
    for name, p in spec.items():
        value = params.get(name, p.default)
        if p.choices:
            if value not in p.choices:
                raise UserError(f"--{name} {value!r} for --rule {rule}: expected {p.expected}")
            resolved[name] = value
            continue
        value = float(value)
        if not (math.isfinite(value) and p.valid(value)):
            raise UserError(f"--{name} {value:g} for --rule {rule}: expected {p.expected}")
        resolved[name] = value
    return resolved


def choose_threshold(rule: str, scored: Scored, **params) -> float:
    """The threshold ``rule`` picks from the validation ``scored``."""
    params = resolve_params(rule, **params)
    if scored.scores.ndim != 1 or scored.scores.shape != scored.y.shape:
        raise ValueError(f"scores {scored.scores.shape} and labels {scored.y.shape} must be equal-length vectors")
    if scored.scores.size == 0:
        raise UserError("no validation windows to choose a threshold on")
    check_labels(rule, scored.y)
    return RULES[rule].choose(scored, **params)


def check_labels(rule: str, labels) -> None:
    """Refuse a rule that needs positive windows when the validation labels have none."""
    if RULES[rule].needs_positives and not np.any(np.asarray(labels) == 1):
        raise UserError(f"--rule {rule} needs positive windows in the validation split and it has none; "
                        "use --rule alarms-per-day or --rule value (or quantile or evt)")


# Flagged windows closer than this are one episode: 30 minutes at the sheet-break's 2-minute
# cadence, the same share of time at any other (1-second data is not merged over half an hour).
DEFAULT_MERGE = "15rows"


@dataclass(frozen=True)
class ThresholdOptions:
    """How the threshold is chosen and how alarms are counted.

    ``merge`` and ``horizon``: minutes (a number), or as :func:`parse_gap` reads them (``90s``,
    ``30min``, ``15rows``); :meth:`resolved` turns them into minutes at the data's cadence, the
    unit threshold.json keeps. ``merge`` None: DEFAULT_MERGE. ``horizon`` None: the label
    shift (shift rows x the cadence), the warning the labels themselves ask for; operators ask
    for 30 or 60 minutes. ``smooth``: the alarm rule's trailing median over this many windows
    (:func:`~lstm_rare_event.alarms.rule.trailing_median`); the rule is chosen on the smoothed
    scores. 0 and 1: off (stored as 1). ``carry``: with the threshold of the run this one
    replaces (``threshold --previous``), the weight that threshold keeps in this one's
    (:func:`carried`); 0: this run's choice as it is.
    """

    rule: str = "alarms-per-day"
    params: dict = field(default_factory=dict)
    merge: float | str | None = None
    horizon: float | str | None = None
    smooth: int = 1
    carry: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "params", resolve_params(self.rule, **self.params))
        if isinstance(self.smooth, bool) or not isinstance(self.smooth, (int, np.integer)) or self.smooth < 0:
            raise UserError(f"--smooth must be a whole number of windows (0 or 1: off), got {self.smooth!r}")
        object.__setattr__(self, "smooth", max(int(self.smooth), 1))
        if isinstance(self.carry, bool) or not (isinstance(self.carry, (int, float)) and 0 <= self.carry < 1):
            raise UserError(f"--carry must be a weight in [0, 1) (0: off), got {self.carry!r}")
        if self.merge is not None:
            _minutes(self.merge, "--merge", 1.0)
        if self.horizon is not None and _minutes(self.horizon, "--horizon", 1.0) == 0:
            raise UserError(f"--horizon {self.horizon}: must be more than 0")

    @property
    def on_train(self) -> bool:
        """Whether the rule reads the normal training windows' scores (``--on train`` or ``fit``)."""
        return self.params.get("on") in ("train", "fit")

    @property
    def needs_train(self) -> bool:
        """Whether choosing scores the training windows: the rule reads them, or the first
        validation windows' trailing median reaches back into them."""
        return self.on_train or self.smooth > 1

    def resolved(self, interval_minutes: float, shift: int) -> "ThresholdOptions":
        """These options with ``merge`` and ``horizon`` in minutes at a cadence of ``interval_minutes``
        and a label shift of ``shift`` rows."""
        merge = _minutes(DEFAULT_MERGE if self.merge is None else self.merge, "--merge", interval_minutes)
        horizon = max(shift, 1) * interval_minutes if self.horizon is None else \
            _minutes(self.horizon, "--horizon", interval_minutes)
        return replace(self, merge=merge, horizon=horizon)

    def recorded(self) -> dict:
        """These options as a step records them; ``smooth`` and ``carry`` only when on, so that a
        step without them records what it did before the options existed."""
        return {**{k: v for k, v in asdict(self).items() if k not in ("smooth", "carry")}, **smoothing(self.smooth),
                **({"carry": self.carry} if self.carry else {})}


def carried(chosen: float, previous: float, weight: float) -> float:
    """The threshold after a retrain: the geometric mean of this run's ``chosen`` value and the
    ``previous`` run's threshold, the previous one weighted ``weight``,

        previous ** weight * chosen ** (1 - weight)

    An exponentially weighted average of the nightly choices (the previous threshold is itself
    carried), in log space because a threshold moves by ratios (a score scaled on each run's
    training). Night to night the budget rule's choice is an extreme of a few days' scores and
    jumps (issue 19: 1060 -> 1528, then a day silent where the old threshold warned of two
    breaks); the average moves a ``1 - weight`` share of each jump in log terms, up or down alike,
    so it follows a lasting change within a few nights and keeps no lasting bias toward more or
    fewer alarms, as a cap on rises alone would. Thresholds of 0 or below are not averaged:
    ``chosen`` is returned."""
    if not 0 <= weight < 1:
        raise ValueError(f"weight {weight} outside [0, 1)")
    if weight == 0 or chosen <= 0 or previous <= 0:
        return float(chosen)
    return float(math.exp(weight * math.log(previous) + (1 - weight) * math.log(chosen)))


def _minutes(value, option: str, interval_minutes: float) -> float:
    """``value`` in minutes: a bare number is minutes, kept exactly as given (as before units
    existed); otherwise a :func:`parse_gap` duration or row count."""
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        return gap_minutes(parse_gap(value, option), interval_minutes)
    if not (math.isfinite(minutes) and minutes >= 0):
        raise UserError(f"{option} {value}: expected 0 or more minutes, a duration such as 90s or 30min, "
                        "or a number of rows such as 15rows")
    return minutes

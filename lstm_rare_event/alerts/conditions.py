"""Data conditions: what the rows say about the data rather than the machine, told once when a
condition starts and once when it clears.

- ``drift``: a sensor's detrended value lies more than ``--drift-sd`` training SDs from its
  training mean (scores there mean little until the run is retrained);
- ``stuck``: a sensor that varied in training holds one value (stuck or disconnected);
- ``cadence``: the rows come at another interval than the run was prepared on;
- ``missing input``: the input file is not there (a day file before its first row);
- ``stale input``: the input's newest row has not changed for ``STALE_ROWS`` rows of the run's
  cadence of wall-clock time (a historian that stopped writing, its file still there).

:class:`DataChecks` looks at one call's new rows; :class:`Conditions` remembers, across calls
(in the score state), which conditions are in force since when, so that a condition seen on
every call is told once. A data condition clears only after ``clear_minutes`` of checked rows
without it, so a sensor wavering around the drift limit does not start and clear it on every
call, and drift clears only once every sensor is back within ``DRIFT_CLEAR_SHARE`` of the drift
limit; a missing or stale input clears as soon as the input is there, or grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lstm_rare_event.alerts import events
from lstm_rare_event.alerts.events import Event

DRIFT, STUCK, CADENCE, MISSING_INPUT, STALE_INPUT = "drift", "stuck", "cadence", "missing input", "stale input"
KINDS = (DRIFT, STUCK, CADENCE, MISSING_INPUT, STALE_INPUT)
INPUT_KINDS = (MISSING_INPUT, STALE_INPUT)  # on the wall clock, cleared at once
DEFAULT_DRIFT_SD = 10.0
# Drift in force holds while a sensor stays beyond this share of the drift limit (5 SD for the
# default 10): a sensor drifting at 10-13 SD crossed the limit both ways every few hours, and
# a clear period alone (DEFAULT_CLEAR_MINUTES) told each crossing. Half, so that a clear means
# the sensor came well back, not that it wavered; not tuned on the replayed data.
DRIFT_CLEAR_SHARE = 0.5
# The input is stale when its newest row is unchanged for this many rows of the run's cadence,
# and at least STALE_MINUTES of wall clock: cron calls come minutes apart and a historian may
# write its rows in batches, so fast data (1-second rows) is not stale between two calls.
STALE_ROWS = 15
STALE_MINUTES = 10.0
DEFAULT_CLEAR_MINUTES = 60.0
SHOWN = 5  # sensors named in a message before "... (N more)"


@dataclass(frozen=True)
class Finding:
    """A condition seen in this call's rows: a one-line description and the sensors concerned."""

    message: str
    sensors: tuple = ()


def _named(names, extra=lambda name: "") -> str:
    shown = ", ".join(f"{name}{extra(name)}" for name in names[:SHOWN])
    return shown + (f", ... ({len(names) - SHOWN} more)" if len(names) > SHOWN else "")


@dataclass
class DataChecks:
    """One call's look at its new rows (the checks :class:`Conditions` tracks)."""

    drift: dict = field(default_factory=dict)  # sensor -> largest |detrended - mean| / SD seen
    steps: dict = field(default_factory=dict)  # step between rows (seconds) -> count
    constant: set = field(default_factory=set)
    rows_checked: bool = False

    def add_steps(self, time: np.ndarray, last_time=None) -> None:
        """The steps between the new rows' times (and from the last row seen before them)."""
        series = time if last_time is None else np.concatenate([[last_time], time])
        steps, counts = np.unique(np.diff(series).astype("timedelta64[s]").astype(np.int64), return_counts=True)
        for step, count in zip(steps.tolist(), counts.tolist()):
            self.steps[step] = self.steps.get(step, 0) + count

    def add_rows(self, pre, raw_values: np.ndarray, first_new: int, detrended_new: np.ndarray,
                 drift_sd: float) -> None:
        """``raw_values``: the carried rows then the new ones (from row ``first_new``);
        ``detrended_new``: the new rows as the detector sees them, before scaling."""
        self.rows_checked = True
        if len(detrended_new):
            with np.errstate(over="ignore", invalid="ignore"):
                z = np.abs((detrended_new - pre.mean_) / pre.scale_).max(axis=0)
            for j in np.flatnonzero(z > drift_sd * DRIFT_CLEAR_SHARE):  # findings() keeps those beyond the limit
                name = pre.features_[j]
                self.drift[name] = max(self.drift.get(name, 0.0), float(z[j]))
        # Stuck: the same value in every new row, or in the latest rows (earlier calls' too)
        # when the new ones are few: at least the rows of one window's context.
        stuck = max(pre.context_rows + 1, 2 * pre.lookback)
        if len(raw_values) >= stuck:
            values = raw_values[min(first_new, len(raw_values) - stuck):]
            constant = (values == values[0]).all(axis=0) & (pre.scale_ != 1.0)
            self.constant.update(pre.features_[j] for j in np.flatnonzero(constant))

    def holding(self) -> set[str]:
        """The conditions in force that this call's rows keep in force without starting them:
        drift while a sensor stays beyond DRIFT_CLEAR_SHARE of the limit."""
        return {DRIFT} if self.drift else set()

    def checked(self) -> set[str]:
        """The conditions this call could see, so may clear: none without new rows."""
        return ({DRIFT, STUCK} if self.rows_checked else set()) | ({CADENCE} if self.steps else set())

    def findings(self, pre, drift_sd: float) -> dict[str, Finding]:
        found = {}
        far = {k: v for k, v in self.drift.items() if v > drift_sd}
        if far:
            names = sorted(far, key=lambda k: -far[k])
            found[DRIFT] = Finding(f"{len(names)} sensor(s) beyond {drift_sd:g} training SDs: "
                                   f"{_named(names, lambda k: f' ({far[k]:.0f} SD)')}; scores there mean little "
                                   "until the run is retrained", tuple(names))
        if self.steps:
            step, count = max(self.steps.items(), key=lambda kv: (kv[1], -kv[0]))
            interval = int(pre.interval_ / np.timedelta64(1, "s"))
            if step != interval and (step < interval or count >= pre.lookback):
                found[CADENCE] = Finding(f"the rows come every {step / 60:g} minutes, the run was prepared on "
                                         f"{interval / 60:g}-minute rows; resample them or prepare a run on such rows")
        if self.constant:
            names = sorted(self.constant, key=pre.features_.index)
            found[STUCK] = Finding(f"{len(names)} sensor(s) constant in the latest rows that varied in training: "
                                   f"{_named(names)} (stuck or disconnected?)", tuple(names))
        return found


@dataclass
class Condition:
    """A condition in force: since when, last seen when (the same clock: data time for data
    conditions, the wall clock for a missing input), and what was seen last."""

    kind: str
    since: str
    last_seen: str
    message: str
    sensors: list = field(default_factory=list)


def iso_seconds(text: str) -> int:
    """Seconds since the epoch of an ISO time (a state's times)."""
    return int(np.datetime64(text, "s").astype(np.int64))


@dataclass
class Conditions:
    """The conditions in force, carried in the score state between calls."""

    active: dict = field(default_factory=dict)  # kind -> Condition
    clear_minutes: float = DEFAULT_CLEAR_MINUTES

    def update(self, found: dict[str, Finding], checked, now: str, run: str, holding=()) -> list[Event]:
        """Take what a call found (``found``) among the conditions it could see (``checked``)
        at ``now`` (ISO time); return the events to tell: each condition that starts, and each
        checked one not seen for ``clear_minutes`` (at once for a missing or stale input).
        ``holding``: conditions seen below their starting level, kept in force if they are."""
        told = []
        for kind, finding in found.items():
            if kind not in KINDS:
                raise ValueError(f"unknown condition {kind!r}")
            condition = self.active.get(kind)
            if condition is None:
                self.active[kind] = Condition(kind, now, now, finding.message, list(finding.sensors))
                told.append(events.condition_started(run, kind, now, finding.message, list(finding.sensors)))
            else:
                condition.last_seen, condition.message, condition.sensors = now, finding.message, list(finding.sensors)
        for kind in set(holding) - set(found):
            if kind in self.active:
                self.active[kind].last_seen = now
        for kind in sorted(set(checked) - set(found)):
            condition = self.active.get(kind)
            hold = 0 if kind in INPUT_KINDS else self.clear_minutes * 60
            if condition is not None and iso_seconds(now) - iso_seconds(condition.last_seen) >= hold:
                del self.active[kind]
                told.append(events.condition_cleared(run, kind, condition.since, now))
        return told

    def as_json(self) -> list[dict]:
        return [{"condition": c.kind, "since": c.since, "last_seen": c.last_seen, "message": c.message,
                 "sensors": c.sensors} for c in self.active.values()]

    @classmethod
    def from_json(cls, data: list, clear_minutes: float = DEFAULT_CLEAR_MINUTES) -> "Conditions":
        """The conditions :meth:`as_json` wrote; KeyError, TypeError or ValueError when malformed."""
        active = {}
        for item in data:
            kind = item["condition"]
            if kind not in KINDS or not all(isinstance(item[k], str) for k in ("since", "last_seen", "message")):
                raise ValueError(f"not a condition: {item!r}")
            iso_seconds(item["since"]), iso_seconds(item["last_seen"])  # times that parse
            sensors = item.get("sensors", [])
            if not isinstance(sensors, list) or not all(isinstance(s, str) for s in sensors):
                raise ValueError(f"sensors of {kind!r}: {sensors!r}")
            active[kind] = Condition(kind, item["since"], item["last_seen"], item["message"], sensors)
        return cls(active, clear_minutes)

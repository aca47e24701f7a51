"""One scoring call's alerting, from the saved state to the sinks: what the engine calls.

:class:`Watch` holds what the score state keeps for alerting (the episode's lifecycle, the
conditions in force, the events a sink has not taken) and collects the call's events: the
engine hands it each piece of scored windows, then the call's data checks and whether an
input was missing; :meth:`Watch.tell` prints each event once (``alert:`` or ``warning:``),
hands them to the sinks and prints an ``error:`` line per sink failure. The state is saved
after telling, with what is still pending, so an event is never lost between calls (a call
killed before saving tells it again, with the same id).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from lstm_rare_event import log
from lstm_rare_event.alerts.conditions import (
    DEFAULT_CLEAR_MINUTES, KINDS, MISSING_INPUT, STALE_INPUT, STALE_MINUTES, STALE_ROWS, Conditions, DataChecks,
    Finding, iso_seconds,
)
from lstm_rare_event.alerts.lifecycle import Lifecycle
from lstm_rare_event.alerts.sinks import Delivery, Pending, SinkOptions, deliver, write_metrics
from lstm_rare_event.preprocess.spans import gap_minutes

_PRINT = {"alert": log.alert, "warning": log.warning}


def wall_clock() -> str:
    """Now, UTC, to the second: the clock of a missing input (it has no rows to date it)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Watch:
    lifecycle: Lifecycle
    conditions: Conditions = field(default_factory=Conditions)
    pending: list = field(default_factory=list)  # Pending
    last_score: float | None = None  # of the last window scored, any call
    told: list = field(default_factory=list)  # this call's events, in order
    delivery: Delivery | None = None
    # The input's newest row (ISO) and when (wall clock, ISO) a call first saw it: the stale
    # input is judged on the wall clock between calls, never by comparing a row's time with it
    # (a historian writes local time or lags, and the two clocks need not agree).
    newest: tuple | None = None
    # --stale-after as parse_gap reads it (rows or a duration); None: stale_minutes' default.
    stale_after: object = None

    @classmethod
    def start(cls, saved: dict | None, run: str, merge_minutes: float,
              clear_minutes: float = DEFAULT_CLEAR_MINUTES, stale_after=None) -> "Watch":
        """From the state's ``alerts`` object (None: a new state, or a batch call).
        KeyError, TypeError or ValueError when it is malformed."""
        if saved is None:
            return cls(Lifecycle(run, merge_minutes), Conditions(clear_minutes=clear_minutes), stale_after=stale_after)
        last = saved["last_score"]
        if last is not None and not isinstance(last, (int, float)):
            raise ValueError(f"last_score {last!r}")
        newest = saved.get("newest_row")  # absent from states written before the stale input was told
        if newest is not None:
            newest = (newest["time"], newest["seen"])
            iso_seconds(newest[0]), iso_seconds(newest[1])  # times that parse
        return cls(Lifecycle.from_json(saved["lifecycle"], run, merge_minutes),
                   Conditions.from_json(saved["conditions"], clear_minutes),
                   [Pending.from_json(p) for p in saved["pending"]], last, newest=newest, stale_after=stale_after)

    def windows(self, end_seconds, shown, scores, episode, opened, threshold: float,
                sensors: dict[int, list[dict]]) -> None:
        """A piece of scored windows (see :meth:`Lifecycle.observe`)."""
        self.told += self.lifecycle.observe(end_seconds, shown, scores, episode, opened, threshold, sensors)
        if len(scores):
            self.last_score = float(scores[-1])

    def finish(self, still_open: bool, checks: DataChecks, findings: dict[str, Finding],
               last_row: str | None, interval_minutes: float | None = None, now: str | None = None) -> None:
        """After the call's last piece: an episode the alarm rule no longer lets grow
        (``still_open`` False) is resolved, and the data conditions are updated at ``last_row``
        (ISO, UTC; None: no row ever); with the run's ``interval_minutes``, the stale input at
        ``now`` (ISO, UTC; None: the wall clock)."""
        self.told += self.lifecycle.close(still_open)
        if last_row is None:
            return
        self.told += self.conditions.update(findings, checks.checked(), last_row, self.lifecycle.run,
                                            checks.holding())
        if interval_minutes is not None:
            self._stale(last_row, interval_minutes, now or wall_clock())

    def stale_minutes(self, interval_minutes: float) -> float:
        """How long the newest row may stay the newest: --stale-after, or STALE_ROWS rows of the
        run's cadence and STALE_MINUTES at least."""
        if self.stale_after is None:
            return max(STALE_ROWS * interval_minutes, STALE_MINUTES)
        return gap_minutes(self.stale_after, interval_minutes)

    def _stale(self, last_row: str, interval_minutes: float, now: str) -> None:
        """The stale input: started when the newest row is the one a call saw at least
        :meth:`stale_minutes` ago, cleared by a newer row."""
        if self.newest is None or self.newest[0] != last_row:
            self.newest = (last_row, now)
        limit = self.stale_minutes(interval_minutes)
        waited = (iso_seconds(now) - iso_seconds(self.newest[1])) / 60
        why = f"{STALE_ROWS} rows at the run's cadence" if self.stale_after is None else "--stale-after"
        found = {STALE_INPUT: Finding(f"no new row for {waited:.0f} minutes (over {limit:g}: {why}); the newest is "
                                      f"of {last_row}: is the historian still writing?")} \
            if 0 < limit <= waited else {}  # --stale-after 0: never stale
        self.told += self.conditions.update(found, {STALE_INPUT}, now, self.lifecycle.run)

    def inputs(self, missing: list[str], now: str | None = None) -> None:
        """Which INPUTs were not there (their one-line messages): the missing-input condition."""
        found = {MISSING_INPUT: Finding("; ".join(missing))} if missing else {}
        self.told += self.conditions.update(found, {MISSING_INPUT}, now or wall_clock(), self.lifecycle.run)

    def tell(self, sinks: SinkOptions) -> Delivery:
        """Print the call's events and hand them (after the pending ones) to the sinks."""
        for event in self.told:
            _PRINT[event.prefix](event.message)
        self.delivery = deliver(self.told, self.pending, sinks)
        self.pending = self.delivery.pending
        for line in self.delivery.errors:
            log.error(line)
        return self.delivery

    def metrics(self, sinks: SinkOptions, values: dict, state_name: str) -> None:
        """Rewrite the --metrics textfile (when given) with ``values`` and this watch's own."""
        if sinks.metrics is None:
            return
        open_episode = self.lifecycle.episode
        values = {**values, "episode_open": int(open_episode is not None), "alerts_pending": len(self.pending)}
        conditions = {kind: kind in self.conditions.active for kind in KINDS}  # every series, 0 or 1
        why = write_metrics(sinks.metrics, values, {"state": state_name}, conditions)
        if why is not None:
            log.error(why)

    def as_json(self) -> dict:
        return {"lifecycle": self.lifecycle.as_json(), "conditions": self.conditions.as_json(),
                "pending": [p.as_json() for p in self.pending], "last_score": self.last_score,
                "newest_row": None if self.newest is None else {"time": self.newest[0], "seen": self.newest[1]}}

    def summary(self) -> dict:
        """The call's events and what is still pending, for ``--json``."""
        return {"events": [e.as_json() for e in self.told], "pending_events": len(self.pending),
                "conditions": self.conditions.as_json()}

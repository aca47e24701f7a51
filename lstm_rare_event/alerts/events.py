"""The events an operator is told about: an alarm episode opened or resolved, a data condition
started or cleared. Each is sent once, when it happens, to stderr and to the sinks.

An event is plain data (:meth:`Event.as_json`); its ``id`` is the same whenever the same change
is found again (a call killed after telling and before saving its state finds it again), so a
receiver can drop a repeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OPENED, RESOLVED = "opened", "resolved"
STARTED, CLEARED = "condition-started", "condition-cleared"
EVENTS = (OPENED, RESOLVED, STARTED, CLEARED)
#: the stderr prefix of each kind of event: alarms and data conditions apart
PREFIX = {OPENED: "alert", RESOLVED: "alert", STARTED: "warning", CLEARED: "warning"}
#: environment variables a command sink gets (besides the JSON on stdin), from the event's keys
ENVIRONMENT = {"event": "LRE_EVENT", "id": "LRE_ID", "time": "LRE_TIME", "run": "LRE_RUN", "episode": "LRE_EPISODE",
               "score": "LRE_SCORE", "threshold": "LRE_THRESHOLD", "sensors": "LRE_SENSORS", "start": "LRE_START",
               "end": "LRE_END", "duration_minutes": "LRE_DURATION_MINUTES", "peak": "LRE_PEAK",
               "condition": "LRE_CONDITION", "since": "LRE_SINCE", "message": "LRE_MESSAGE"}


@dataclass(frozen=True)
class Event:
    """One change to tell: ``event`` (one of :data:`EVENTS`), the data time it happened at,
    the run that scored it and the event's own fields (episode, score, sensors, ...)."""

    event: str
    time: str
    run: str
    fields: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.event not in EVENTS:
            raise ValueError(f"unknown event {self.event!r}")

    @property
    def id(self) -> str:
        what = self.fields.get("episode", self.fields.get("condition"))
        return f"{self.event}:{what}:{self.time}"

    @property
    def prefix(self) -> str:
        return PREFIX[self.event]

    @property
    def message(self) -> str:
        return self.fields["message"]

    def as_json(self) -> dict:
        return {"id": self.id, "event": self.event, "time": self.time, "run": self.run, **self.fields}

    @classmethod
    def from_json(cls, data: dict) -> "Event":
        """The event :meth:`as_json` wrote; KeyError, TypeError or ValueError when it is not one."""
        rest = {k: v for k, v in data.items() if k not in ("id", "event", "time", "run")}
        if not isinstance(data["time"], str) or not isinstance(data["run"], str) or "message" not in rest:
            raise ValueError("an event needs a time, a run and a message")
        return cls(data["event"], data["time"], data["run"], rest)

    def environment(self) -> dict[str, str]:
        """LRE_EVENT, LRE_EPISODE, ...: the event's fields a shell command reads without parsing
        JSON; sensors as ``name,name,name``."""
        env = {}
        for key, value in self.as_json().items():
            if key in ENVIRONMENT and value is not None:
                if key == "sensors":
                    value = ",".join(s["name"] if isinstance(s, dict) else str(s) for s in value)
                env[ENVIRONMENT[key]] = str(value)
        return env


def _minutes(start: str, end: str) -> float:
    return float((np.datetime64(end, "s") - np.datetime64(start, "s")) / np.timedelta64(1, "m"))


def _sensor_text(sensor: dict) -> str:
    z = sensor.get("z")
    return f"{sensor['name']} ({sensor['share']:.0%}" + ("" if z is None else f", z {z:+.1f}") + ")"


def opened(run: str, episode: int, start: str, score: float, threshold: float, sensors: list[dict]) -> Event:
    """Episode ``episode`` opened by the window ending at ``start`` with ``score``; ``sensors``:
    its top sensors as {name, share, z} (z: the sensor's value in training SDs from its
    training mean, detrended as the detector saw it; None when unknown)."""
    named = "; top sensors " + ", ".join(map(_sensor_text, sensors)) if sensors else ""
    message = f"alarm episode {episode} opened at {start}: score {score:.4g} above the threshold {threshold:.4g}{named}"
    return Event(OPENED, start, run, {"episode": int(episode), "start": start, "score": float(score),
                                      "threshold": float(threshold), "sensors": list(sensors), "message": message})


def resolved(run: str, episode: int, start: str, end: str, peak: float, peak_time: str, windows: int,
             merge_minutes: float) -> Event:
    """Episode ``episode`` over: its last flagged window ended at ``end`` and no window was
    flagged for the merge gap after it."""
    duration = _minutes(start, end)
    message = (f"alarm episode {episode} resolved: last flagged window {end}, {duration:g} minutes after it opened; "
               f"peak score {peak:.4g} at {peak_time}; {windows:,} flagged window{'' if windows == 1 else 's'}; none since for "
               f"{merge_minutes:g} minutes")
    return Event(RESOLVED, end, run, {"episode": int(episode), "start": start, "end": end,
                                      "duration_minutes": duration, "peak": float(peak), "peak_time": peak_time,
                                      "windows": int(windows), "message": message})


def condition_started(run: str, condition: str, since: str, message: str, sensors: list[str]) -> Event:
    return Event(STARTED, since, run, {"condition": condition, "since": since, "sensors": list(sensors),
                                       "message": f"{condition} since {since}: {message}"})


def condition_cleared(run: str, condition: str, since: str, cleared: str) -> Event:
    return Event(CLEARED, cleared, run, {"condition": condition, "since": since,
                                         "message": f"{condition} cleared at {cleared} (since {since})"})

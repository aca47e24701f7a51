"""An alarm episode's life as the operator hears of it: ``opened`` once, when its first window is
scored, and ``resolved`` once, when no window has been flagged for the merge gap after its
last flagged one (or when the next episode opens, which the merge gap already implies).

:class:`Lifecycle` reads the windows as the scoring engine writes them (end time, score,
episode id and ``opened`` mark, the numbering is the alarm rule's) and carries the open
episode's peak and size between calls, in the score state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lstm_rare_event.alerts import events
from lstm_rare_event.alerts.events import Event


@dataclass
class Tracked:
    """The open episode: its id, times as written in scores.csv (``start``, ``last``, ``peak_time``),
    the last flagged window's end in UTC seconds, its peak score and its flagged windows."""

    id: int
    start: str
    last: str
    last_seconds: int
    peak: float
    peak_time: str
    windows: int


@dataclass
class Lifecycle:
    run: str
    merge_minutes: float
    episode: Tracked | None = None
    last_alert: dict | None = None  # the last alert event (as JSON), for `status`

    def observe(self, end_seconds: np.ndarray, shown: np.ndarray, scores: np.ndarray, episode: np.ndarray,
                opened: np.ndarray, threshold: float, sensors: dict[int, list[dict]]) -> list[Event]:
        """The events of one piece of windows, in time order. ``end_seconds``: each window's end
        (UTC seconds); ``shown``: the same as scores.csv writes it; ``episode``: the alarm rule's
        id (0: not flagged); ``opened``: 1 where a window opened its episode; ``sensors``: per
        opening window's index, its top sensors ({name, share, z})."""
        told = []
        for i in np.flatnonzero(np.asarray(episode) > 0):
            ident, when, score = int(episode[i]), str(shown[i]), float(scores[i])
            if opened[i] or self.episode is None or self.episode.id != ident:
                if self.episode is not None:
                    told.append(self._resolved())
                self.episode = Tracked(ident, when, when, int(end_seconds[i]), score, when, 0)
                if opened[i]:
                    told.append(events.opened(self.run, ident, when, score, threshold, sensors.get(int(i), [])))
            tracked = self.episode
            tracked.last, tracked.last_seconds, tracked.windows = when, int(end_seconds[i]), tracked.windows + 1
            if score > tracked.peak:
                tracked.peak, tracked.peak_time = score, when
        return self._remember(told)

    def close(self, still_open: bool) -> list[Event]:
        """``resolved`` once the alarm rule no longer lets the episode grow (``still_open``
        False: the windows scored reach the merge gap past its last flagged one;
        :meth:`~lstm_rare_event.alarms.rule.AlarmRule.still_open`)."""
        if self.episode is None or still_open:
            return []
        return self._remember([self._resolved()])

    def _resolved(self) -> Event:
        t, self.episode = self.episode, None
        return events.resolved(self.run, t.id, t.start, t.last, t.peak, t.peak_time, t.windows, self.merge_minutes)

    def _remember(self, told: list[Event]) -> list[Event]:
        if told:
            self.last_alert = told[-1].as_json()
        return told

    def as_json(self) -> dict:
        return {"episode": None if self.episode is None else asdict(self.episode), "last_alert": self.last_alert}

    @classmethod
    def from_json(cls, data: dict, run: str, merge_minutes: float) -> "Lifecycle":
        """The lifecycle :meth:`as_json` wrote; KeyError, TypeError or ValueError when malformed."""
        episode = data["episode"]
        if episode is not None:
            episode = Tracked(**episode)
            if not (isinstance(episode.id, int) and episode.id > 0 and isinstance(episode.windows, int)
                    and np.isfinite(float(episode.peak)) and isinstance(episode.last_seconds, int)):
                raise ValueError(f"not an open episode: {data['episode']!r}")
            for text in (episode.start, episode.last, episode.peak_time):
                if not isinstance(text, str):
                    raise ValueError(f"not a time: {text!r}")
                np.datetime64(text, "s")  # the resolved event measures the episode's duration from them
        last = data["last_alert"]
        if last is not None:
            events.Event.from_json(last)
        return cls(run, merge_minutes, episode, last)

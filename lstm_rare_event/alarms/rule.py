"""The alarm rule: when a window raises an alarm, and how alarms group into episodes.

This is the one place that flags windows and numbers alarm episodes; every step (``score``,
``evaluate``, ``backtest``, ``report``) and the episode metrics go through it.

- A window's **score** is its detector's score, or with ``smooth`` K > 1 the trailing median of
  the detector's scores of the last K windows of its gap-free segment, itself included (fewer
  at the start of a segment: those it has). SKAB's valve1 study (bench/skab_study.md): a score
  of one row (mahalanobis, pca, lstm ``--error last``) flickers around the limit inside a
  fault; the median rides over those dips, where k flags in a row would only delay the onset.
- A window is **flagged** when its score is strictly above the rule's value (the recipe's
  ``error > threshold``).
- Flagged windows close in time are one **episode**: a flagged window opens a new episode when
  the previous flagged window ended ``merge_minutes`` or more before it (or there is none), so
  with ``merge_minutes`` 0 every flagged window is its own episode. The gap is measured on end
  times: a hole in the data longer than the merge splits an episode, unflagged windows between
  two close flagged ones do not.
- Episodes are **numbered** from 1 in time order; 0 means "not flagged". The numbering runs on
  across pieces of windows and across calls: :class:`OpenEpisode` is the latest episode, handed
  from one piece to the next (``score --state`` saves it between calls), so that pieces numbered
  one after the other give the numbers one pass over all the windows gives.

NumPy only: ``score`` imports this on every cron call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from lstm_rare_event.preprocess.detrend import trailing_median as past_median

# The merge gap of runs thresholded before threshold.json recorded one.
DEFAULT_MERGE_MINUTES = 30.0


def trailing_median(scores, segment, k: int) -> np.ndarray:
    """(N,) each score replaced by the median of the last ``k`` scores of its segment, itself
    included (fewer at the start of a segment). ``scores`` are in time order; ``segment`` (N,)
    names each one's gap-free segment (its start time), equal within a segment. Causal: a
    score depends only on those before it, so pieces scored one after another, each with the
    k - 1 windows before it, give the scores of one pass."""
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.size
    if k <= 1 or n == 0:
        return scores
    segment = np.asarray(segment)
    new = np.append(True, segment[1:] != segment[:-1])
    last = np.flatnonzero(np.append(new[1:], True))  # each segment's last window
    # The median of the k windows ending at one, itself included, is detrending's median of the k
    # rows before the next one of its segment: each segment's last window is followed by a copy.
    ids = np.cumsum(new)
    past = past_median(np.insert(scores, last + 1, scores[last])[:, None], np.insert(ids, last + 1, ids[last]), k)
    return past[np.arange(n) + np.searchsorted(last, np.arange(n)) + 1, 0]


def smooth_parts(k: int, parts) -> list[np.ndarray]:
    """The scores of several sets of windows of one series (the splits of a prepared file),
    each ``(scores, end_time, segment)``, smoothed as one sequence in time order: a split's
    first windows follow the windows of the split before it, as they do when the file is scored."""
    parts = [(np.asarray(s, dtype=np.float64), np.asarray(t), np.asarray(g)) for s, t, g in parts]
    if k <= 1:
        return [s for s, _, _ in parts]
    scores, time, segment = (np.concatenate(column) for column in zip(*parts))
    order = np.argsort(time, kind="stable")
    smoothed = np.empty_like(scores)
    smoothed[order] = trailing_median(scores[order], segment[order], k)
    return np.split(smoothed, np.cumsum([len(s) for s, _, _ in parts])[:-1])


def smoothing(k: int) -> dict:
    """What threshold.json (and a step's recorded options) say about smoothing: nothing when it
    is off, so that a run without it writes what it wrote before the option existed."""
    return {"smooth": int(k)} if k > 1 else {}


def flag(scores, value: float) -> np.ndarray:
    """True where a window raises an alarm: its score strictly above ``value`` (the recipe's)."""
    return np.asarray(scores) > value


@dataclass(frozen=True)
class OpenEpisode:
    """The latest episode of the windows numbered so far (number 0: none yet)."""

    number: int = 0
    start: np.datetime64 | None = None  # end time of its first flagged window
    last: np.datetime64 | None = None  # end time of its last flagged window


@dataclass(frozen=True)
class Episodes:
    """The flags and episode numbers of one piece of N windows; the E episodes it opens."""

    flag: np.ndarray  # (N,) bool
    number: np.ndarray  # (N,) int64: the window's episode, from 1; 0 for an unflagged window
    opened: np.ndarray  # (N,) bool: True where the window opened a new episode
    start: np.ndarray  # (E,) datetime64[s]: first flagged window of each episode opened here
    end: np.ndarray  # (E,) datetime64[s]: its last flagged window (in this piece)
    after: OpenEpisode  # the latest episode after these windows: what the next piece continues

    def __len__(self) -> int:
        return len(self.start)


def number_episodes(end_time, flags, merge_minutes: float, before: OpenEpisode = OpenEpisode()) -> Episodes:
    """Number the episodes of the windows flagged in ``flags`` (N,), ending at ``end_time`` (N,
    datetime64, ascending), after the windows that left ``before``."""
    t = np.asarray(end_time).astype("datetime64[s]")
    flags = np.asarray(flags, dtype=bool)
    where = np.flatnonzero(flags)
    seconds = t[where].astype(np.int64)
    gaps = np.diff(seconds, prepend=seconds[:1] if before.last is None else
                   np.datetime64(before.last, "s").astype(np.int64))
    opens = gaps >= merge_minutes * 60
    if before.last is None:
        opens[:1] = True
    ids = before.number + np.cumsum(opens)
    number = np.zeros(t.size, dtype=np.int64)
    number[where] = ids
    opened = np.zeros(t.size, dtype=bool)
    opened[where[opens]] = True
    last_of_run = np.append(ids[1:] != ids[:-1], True) if where.size else np.zeros(0, dtype=bool)
    ends = t[where[last_of_run]]
    if where.size and not opens[0]:
        ends = ends[1:]  # the first run continues the episode before: not opened here
    after = before
    if where.size:
        start = t[where[opens][-1]] if opens.any() else before.start
        after = OpenEpisode(int(ids[-1]), start, t[where[-1]])
    return Episodes(flags, number, opened, t[where[opens]], ends, after)


@dataclass(frozen=True)
class AlarmRule:
    """A threshold with how its alarms are counted, as threshold.json saves them.

    ``value``: a window is flagged above it; ``merge_minutes``: the episode merge gap;
    ``horizon_minutes``: how long before a break an episode must start to warn of it (None
    where no step chose it); ``rule`` and ``params``: how the value was chosen; ``smooth``: the
    windows a score's trailing median spans (1: the detector's score as it is)."""

    value: float
    merge_minutes: float = DEFAULT_MERGE_MINUTES
    horizon_minutes: float | None = None
    rule: str = "value"
    params: dict = field(default_factory=dict, compare=True, hash=False)
    smooth: int = 1

    def smoothed(self, scores, segment) -> np.ndarray:
        """The scores the value applies to: the detector's ``scores`` of windows in time order,
        with the gap-free segment each ends in (``Windows.segment_start``), smoothed."""
        return trailing_median(scores, segment, self.smooth)

    def flag(self, scores) -> np.ndarray:
        return flag(scores, self.value)

    def episodes(self, end_time, scores, before: OpenEpisode = OpenEpisode()) -> Episodes:
        """Flags and episode numbers of windows scored ``scores`` at ``end_time``, after ``before``."""
        return number_episodes(end_time, self.flag(scores), self.merge_minutes, before)

    def still_open(self, episode: OpenEpisode, last_scored) -> bool:
        """Whether ``episode`` may still grow: a window flagged right after ``last_scored`` would
        join it (less than the merge gap after its last flagged window)."""
        if episode.last is None or last_scored is None:
            return False
        gap = np.datetime64(last_scored, "s").astype(np.int64) - np.datetime64(episode.last, "s").astype(np.int64)
        return bool(gap < self.merge_minutes * 60)

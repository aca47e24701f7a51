"""The figure of a scored period, drawn from ``score``'s CSV: scores, threshold, alarm episodes
(as the CSV numbers them) and the top sensors of each, and, for a CSV written with
``--keep-labels``, its breaks warned or missed. ``score --plot`` and ``report --scores`` draw it.

A break is the first line of each run of lines labelled 1 (a break row, or an anomaly
interval's first row). It is judged as every step judges breaks
(:func:`~lstm_rare_event.alarms.episodes.episode_metrics`): warned when an alarm episode of the
CSV's flagged windows, merged by the run's rule, starts within the rule's horizon before it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstm_rare_event.alarms import plots
from lstm_rare_event.alarms.episodes import episode_metrics
from lstm_rare_event.alarms.evaluation import warned_chance
from lstm_rare_event.alarms.rule import AlarmRule
from lstm_rare_event.alarms.sensors import episode_sensors
from lstm_rare_event.alarms.thresholds import Scored
from lstm_rare_event.errors import UserError


def read_scores(scores_csv) -> dict:
    """``score``'s CSV as arrays: time (datetime64[s], the data's wall-clock time), score, flag,
    episode (from 1, 0 when not flagged), opened (None for a CSV without the column), and per
    window its top sensors with their shares (lists, empty for detectors without any)."""
    import pandas as pd

    path = Path(scores_csv)
    if not path.is_file():
        raise UserError(f"{path}: file not found (expected the CSV written by `lstm-rare-event score`)")
    try:
        frame = pd.read_csv(path, dtype={"time": str})
    except Exception as exc:  # noqa: BLE001 - one line for any unreadable file
        raise UserError(f"{path}: cannot be read as a scores CSV ({type(exc).__name__}: {exc})") from None
    missing = [c for c in ("time", "score", "flag", "episode") if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; expected the CSV written by "
                        "`lstm-rare-event score`")
    # The wall-clock times as written (the data's own zone), and the instants (UTC, as a state's
    # adoption records have them; naive times are taken as UTC, as scoring takes them).
    text = frame["time"].str.strip()
    instant = None
    try:
        parsed = pd.to_datetime(text, format="ISO8601", utc=False)
    except (ValueError, TypeError):  # offsets that change (daylight saving): each row's wall-clock time
        instant = pd.to_datetime(text, format="ISO8601", utc=True).dt.tz_localize(None)
        parsed = pd.to_datetime(text.str.replace(r"(Z|[+-]\d{2}:?\d{2})$", "", regex=True), format="ISO8601")
    zoned = getattr(parsed.dt, "tz", None) is not None
    if zoned:
        instant = parsed.dt.tz_convert(None)
        parsed = parsed.dt.tz_localize(None)
    elif instant is None:
        instant = parsed
    sensors = sorted(int(c.split("_")[1]) for c in frame.columns if c.startswith("sensor_") and c[7:].isdigit())
    top = [[(str(s), float(w)) for s, w in zip(row[0::2], row[1::2]) if isinstance(s, str) and s]
           for row in frame[[f"{k}_{i}" for i in sensors for k in ("sensor", "share")]].itertuples(index=False)] \
        if sensors else [[] for _ in range(len(frame))]
    opened = frame["opened"].to_numpy().astype(bool) if "opened" in frame.columns else None
    y = None
    if "y" in frame.columns:
        y = pd.to_numeric(frame["y"], errors="coerce")
        bad = np.flatnonzero(~y.isin([0, 1]).to_numpy())
        if bad.size:  # rows counted from the first data row, as the input's are
            raise UserError(f"{path}: row {bad[0] + 1}, column 'y': {frame['y'].iloc[bad[0]]!r} is not a label "
                            "(0 or 1)")
        y = y.to_numpy(dtype=np.int64)
    return {"time": parsed.to_numpy().astype("datetime64[s]"), "score": frame["score"].to_numpy(dtype=float),
            "utc": instant.to_numpy().astype("datetime64[s]"), "flag": frame["flag"].to_numpy().astype(bool),
            "episode": frame["episode"].to_numpy(dtype=np.int64), "opened": opened, "top": top, "zoned": zoned,
            "y": y}


def windows(scores: dict) -> np.ndarray:
    """Which lines are scored windows (the others, written by --all-rows or --keep-labels, have
    no score)."""
    return np.isfinite(scores["score"])


def break_times(scores: dict) -> np.ndarray | None:
    """The breaks of a CSV with a y column (module docstring), None for one without."""
    y = scores.get("y")
    if y is None:
        return None
    labelled = y == 1
    return scores["time"][labelled & ~np.r_[False, labelled[:-1]]]


def judged_breaks(scores: dict, rule: AlarmRule, interval_minutes: float) -> dict | None:
    """The breaks of the scored period judged with ``rule`` (:func:`episode_metrics`, its
    ``breaks``: event_time, warned, lead_minutes), and the same alarms shifted in time
    (:func:`~lstm_rare_event.alarms.evaluation.warned_chance`: the share warned by chance, the
    alarm's on-time share); None without a y column or without a horizon in the rule.
    ``interval_minutes``: the run's cadence, for the days covered."""
    breaks = break_times(scores)
    if breaks is None or rule.horizon_minutes is None:
        return None
    scored = windows(scores)
    end_time, flags = scores["time"][scored], scores["flag"][scored]
    judged = episode_metrics(end_time, flags, breaks, interval_minutes, rule.merge_minutes, rule.horizon_minutes)
    s = Scored(scores["score"][scored], scores["y"][scored], end_time, breaks, interval_minutes,
               rule.merge_minutes, rule.horizon_minutes)
    return {**judged, **warned_chance(s, flags)}


def figure_breaks(judged: dict | None) -> list[dict]:
    """``judged``'s breaks as the figures draw them."""
    return [] if judged is None else [{"time": np.datetime64(b["event_time"], "s"), "warned": b["warned"],
                                       "lead_minutes": b["lead_minutes"]} for b in judged["breaks"]]


def scored_episodes(scores: dict) -> list[dict]:
    """The alarm episodes of a scores CSV as its ``episode`` column numbers them, in time order:
    number, start, end, windows, peak score and the top sensors the alert named
    (:func:`~lstm_rare_event.alarms.sensors.episode_sensors`: those of the window that opened it,
    as the CSV's ``opened`` column marks it)."""
    numbers = scores["episode"]
    opened = scores.get("opened")
    if opened is None:  # first window of each episode
        opened = (numbers > 0) & np.r_[True, numbers[1:] != numbers[:-1]]
    named = episode_sensors(numbers, opened, scores["top"])
    rows = []
    for k in np.unique(numbers[numbers > 0]):
        members = np.flatnonzero(numbers == k)
        rows.append({"number": int(k), "start": scores["time"][members[0]], "end": scores["time"][members[-1]],
                     "windows": int(members.size), "peak": float(scores["score"][members].max()),
                     "sensors": [name for name, _ in named[int(k)]]})
    return rows


def run_thresholds(scores: dict, value: float, adopted=()) -> np.ndarray | float:
    """The threshold each window was flagged with: ``value`` (the run's), or where the state's
    adoption records (``adopted``: each the earlier run's threshold and ``after``, the last
    window it scored, UTC) fall inside the period, per window the threshold of the run that
    scored it. A record without a threshold (a state from before they were kept) leaves
    ``value`` alone."""
    steps = sorted((np.datetime64(a["after"], "s"), a["threshold"]) for a in adopted
                   if a.get("after") and a.get("threshold") is not None)
    when = scores["utc"]
    if not steps or not when.size or all(after < when[0] for after, _ in steps):
        return value
    limits = np.full(when.size, float(value))
    for after, earlier in reversed(steps):  # a window up to `after` was scored by the earlier run
        limits[when <= after] = float(earlier)
    return limits


def plot_scores(scores_csv, png, *, threshold: float | None = None, rule: AlarmRule | None = None,
                interval_minutes: float | None = None, utc_offset_seconds: int | None = None, title: str = "",
                adopted=()):
    """The figure of a scored period from ``score``'s CSV: scores, threshold, alarm episodes and
    the top sensors of each; with the run's ``rule`` (its value is the threshold drawn) and
    cadence ``interval_minutes``, the breaks of a CSV with a y column, warned or missed. With
    the state's adoption records (``adopted``), each run's threshold over its own windows
    (:func:`run_thresholds`). Times written with a UTC offset are drawn as written (the data's
    own time zone); times without one are shifted by ``utc_offset_seconds`` when given (a
    run's ``prepare.json`` ``utc_offset_seconds``). Returns the Figure."""
    scores = read_scores(scores_csv)
    rows = scored_episodes(scores)
    flagged = scores["score"][scores["flag"]]
    if rule is not None:
        threshold = rule.value
    if threshold is not None:
        threshold = run_thresholds(scores, threshold, adopted)
    breaks = figure_breaks(judged_breaks(scores, rule, interval_minutes) if rule is not None else None)
    return plots.score_figure(scores["time"], scores["score"], threshold, png,
                              episodes=[(r["start"], r["end"]) for r in rows],
                              episode_sensors=[r["sensors"] for r in rows], breaks=breaks,
                              title=title or f"Scored period: {len(rows)} alarm episodes, {flagged.size:,} of "
                                             f"{int(windows(scores).sum()):,} windows flagged",
                              utc_offset_seconds=None if scores["zoned"] else utc_offset_seconds)


#: what an episode's figure shows of the input on either side of the episode
EPISODE_MARGIN = np.timedelta64(2, "h")


def input_rows(arguments, pre) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The raw sensor values of the INPUT files that were scored (paths or patterns, in time
    order), read as the run reads its files: (times as the scores CSV writes them, the data's
    wall-clock time where the file has UTC offsets; values (rows, sensors); sensor names)."""
    from lstm_rare_event.preprocess.csv import read_table
    from lstm_rare_event.preprocess.inputs import expand

    columns = pre.options.columns
    sources = expand(arguments, pre.sep_, pre.decimal_, columns, stdin=False)
    table = read_table(sources, pre.features_, labels="optional", sep=pre.sep_, decimal=pre.decimal_, columns=columns)
    times = table.time if table.utc_offset is None else table.time + table.utc_offset.astype("timedelta64[s]")
    return times, np.asarray(table.values), list(table.features)


def plot_episode(scores: dict, episode: dict, rows, png, *, threshold: float | None = None, breaks=(),
                 utc_offset_seconds: int | None = None, title: str = ""):
    """The figure of one alarm episode (a :func:`scored_episodes` row): its top sensors' raw
    values from ``rows`` (:func:`input_rows`) and the scores, EPISODE_MARGIN either side, the
    threshold, and ``breaks`` (:func:`figure_breaks`) in that span. None when ``rows`` has no
    row in the span (the input is not the one scored)."""
    times, values, features = rows
    low, high = episode["start"] - EPISODE_MARGIN, episode["end"] + EPISODE_MARGIN
    near = (times >= low) & (times <= high)
    if not near.any():
        return None
    where = {name: j for j, name in enumerate(features)}
    sensors = {name: values[near, where[name]] for name in episode["sensors"] if name in where}
    scored = windows(scores) & (scores["time"] >= low) & (scores["time"] <= high)
    shown = [b for b in breaks if low <= b["time"] <= high]
    return plots.episode_figure(times[near], sensors, scores["time"][scored], scores["score"][scored], threshold,
                                (episode["start"], episode["end"]), png, breaks=shown, title=title,
                                utc_offset_seconds=None if scores["zoned"] else utc_offset_seconds)

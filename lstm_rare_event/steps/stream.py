"""Scoring as a deployment lives: every few minutes, only the new rows, with state between calls.

One engine serves the batch call and the stateful one, so that they write the same bytes:
:class:`Stream` takes raw rows in pieces of any size, carries the raw rows that the next
windows need (:class:`Carry`: the detrending baselines and the window's earlier rows), skips
rows it has seen, scores only windows that end in new rows, and numbers alarm episodes across
pieces with the merge gap saved in ``threshold.json``.

- Batch (``score RUN INPUT --out scores.csv [--history PREV.csv]``): one Stream over the file,
  after the history's rows as context; the output is written atomically.
- Stateful (``--state STATE``): the Carry is saved in STATE between calls (JSON, arrays as
  base64 npz, never pickle), under an exclusive lock beside it (``STATE.lock``). New windows
  are appended to ``--out``; the state records the output's length after the append, so a
  call killed between the append and the state write is undone by the next call, which cuts
  the output back to that length and scores the same rows again.

NumPy and pandas only: this runs every two minutes from cron.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_rare_event import log
from lstm_rare_event.alarms.sensors import top_sensors
from lstm_rare_event.alarms.thresholds import flag
from lstm_rare_event.alerts.conditions import DEFAULT_CLEAR_MINUTES, DEFAULT_DRIFT_SD, DataChecks
from lstm_rare_event.alerts.sinks import SinkOptions
from lstm_rare_event.alerts.watch import Watch
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import atomic_write_text, dumps
from lstm_rare_event.parallel import ahead, map_parts, parts
from lstm_rare_event.preprocess.csv import CHUNK_ROWS, Buffer, Columns, Table, check_table, read_chunks
from lstm_rare_event.preprocess.inputs import Inputs, MissingInput, expand
from lstm_rare_event.preprocess.preprocessor import add_summaries, no_window_line, no_window_summary
from lstm_rare_event.run import DEFAULT_WAIT, THRESHOLD_JSON, _flock
from lstm_rare_event.steps.score import Scorer, atomic_output, check_output, load_scorer, output_columns

STATE_FORMAT = "lstm-rare-event/score-state/1"
MISSING = ("error", "hold")
STDIO = "-"
EXPLAIN_MINIMUM = 2048  # windows per thread: fewer are scored on one (a thread costs more than it saves)


@dataclass(frozen=True)
class ScoreOptions:
    engine: str | None = None  # None: the detector's own (Detector.engines)
    #: load a plug-in detector saved with pickle (which runs its code)
    allow_pickle: bool = False
    chunk_rows: int = CHUNK_ROWS
    #: what an empty cell means: "error" (exit 2 naming row and column) or "hold" the last value
    missing: str = "error"
    #: warn when a sensor's detrended value lies this many training SDs from its training mean
    drift_sd: float = DEFAULT_DRIFT_SD
    wait: float = DEFAULT_WAIT
    #: accept a state written with another run (after a retrain) of the same sensors
    adopt: bool = False
    #: how the input is written (historian exports: sep=";", decimal=",")
    sep: str = ","
    decimal: str = "."
    #: a figure of the scored period, its alarm episodes and their top sensors
    plot: Path | None = None
    #: where events go besides stderr (--alert-cmd, --alert-log, --metrics); their time budget is --wait
    sinks: SinkOptions = SinkOptions()
    #: minutes of rows without a data condition before it is told cleared
    clear_minutes: float = DEFAULT_CLEAR_MINUTES
    #: the input's time and label columns and time format; None: as the run was prepared
    time_column: str | None = None
    label_column: str | None = None
    time_format: str | None = None

    def __post_init__(self):
        if self.chunk_rows < 1:
            raise UserError(f"--chunk-rows must be a positive number of rows, got {self.chunk_rows}")
        if self.missing not in MISSING:
            raise UserError(f"--missing must be one of {', '.join(MISSING)}, got {self.missing!r}")
        if not (math.isfinite(self.drift_sd) and self.drift_sd > 0):
            raise UserError(f"--drift-sd must be a positive number of standard deviations, got {self.drift_sd:g}")
        if not (math.isfinite(self.clear_minutes) and self.clear_minutes >= 0):
            raise UserError(f"--clear-after must be a duration of 0 or more, got {self.clear_minutes:g} minutes")

    def columns(self, trained: Columns) -> Columns:
        """The input's columns: those given here, the others as in training."""
        pick = lambda given, default: default if given is None else given  # noqa: E731
        return Columns(pick(self.time_column, trained.time), pick(self.label_column, trained.label),
                       pick(self.time_format, trained.time_format))


@dataclass
class Carry:
    """What one piece of rows hands the next (and one call the next, through the state file)."""

    tail: Table | None = None  # the last raw rows, as many as the next windows need
    held: np.ndarray | None = None  # (len(tail),) bool: cells of the row filled by --missing hold
    tail_start: np.datetime64 | None = None  # restart time of the tail's first segment
    last_time: np.datetime64 | None = None  # the last raw row seen
    last_scored: np.datetime64 | None = None  # end time of the last window scored
    episodes: int = 0  # episode ids used so far (ids count from 1)
    episode_start: np.datetime64 | None = None  # the latest episode: its first flagged window
    episode_last: np.datetime64 | None = None  # ... and its last flagged window
    rows: int = 0  # raw rows taken in, all calls
    windows: int = 0  # windows scored, all calls


def _seconds(t) -> int:
    return int(np.datetime64(t, "s").astype(np.int64))


def format_times(time: np.ndarray, utc_offset: np.ndarray | None) -> np.ndarray:
    """ISO 8601 text, as the user gave the times: naive stays naive, a UTC offset is kept."""
    if utc_offset is None:
        return np.datetime_as_string(time, unit="s")
    local = np.datetime_as_string(time + utc_offset.astype("timedelta64[s]"), unit="s").astype(object)
    suffix = {}
    for offset in np.unique(utc_offset):
        a = abs(int(offset))
        suffix[int(offset)] = f"{'-' if offset < 0 else '+'}{a // 3600:02d}:{a % 3600 // 60:02d}"
    return local + np.array([suffix[int(o)] for o in utc_offset], dtype=object)


def _concat(first: Table | None, second: Table) -> Table:
    """Rows of two pieces; a piece without labels counts as all normal, so that break rows of
    the other keep being dropped exactly as in one pass."""
    if first is None:
        return second
    if (first.y is None) != (second.y is None):
        zeros = lambda t: t.y if t.y is not None else np.zeros(len(t), dtype=np.int8)  # noqa: E731
        first = Table(first.time, first.values, first.features, zeros(first), first.utc_offset)
        second = Table(second.time, second.values, second.features, zeros(second), second.utc_offset)
    return Table.concat(first, second)


def _empty_cells(raw: pd.DataFrame, features) -> np.ndarray:
    """(rows, features) bool: cells that are empty or blank."""
    mask = np.zeros((len(raw), len(features)), dtype=bool)
    dtypes = raw.dtypes
    for j, name in enumerate(features):
        if not pd.api.types.is_numeric_dtype(dtypes[name]):  # a column with an empty cell is read as text
            mask[:, j] = raw[name].astype(str).str.strip().eq("").to_numpy()
    return mask


class Stream:
    """Score pieces of raw rows as one pass would (see the module docstring)."""

    def __init__(self, scorer: Scorer, options: ScoreOptions, carry: Carry | None = None, run: str = ""):
        self.scorer = scorer
        self.pre = scorer.preprocessor
        self.options = options
        self.names = options.columns(self.pre.options.columns)
        self.carry = carry or Carry()
        self.checks = DataChecks()
        self.watch = Watch.start(None, run, scorer.merge_minutes)  # a stateful call's comes from its state
        self.opened: list[dict] = []  # episodes opened by this call: id, start, sensors
        self.new_rows = self.skipped = self.windows = self.alarms = 0
        self.first_alarm = self.last_alarm = None
        self.held_windows = 0
        self.coverage: dict | None = None  # the new rows: how many end a window, why the others do not
        self.columns: list[str] | None = None
        self._file_last = None  # the last time read from the current input (ordering check)
        self._file_offsets = None  # whether the current input's times have UTC offsets

    def start_input(self) -> None:
        self._file_last, self._file_offsets = None, None

    @property
    def _has_sensors(self) -> bool:
        return self.scorer.detector.names_sensors

    def feed(self, raw: pd.DataFrame, source, first_row: int, emit: bool = True) -> pd.DataFrame | None:
        """Take one raw chunk of ``source`` (its first data row is ``first_row``); return the
        output rows of the windows ending in its new rows (None without any), or, with
        ``emit`` False (history), only carry its rows forward."""
        pre, carry = self.pre, self.carry
        features = pre.select(raw.columns, source, self.names)
        if raw.empty:
            return None
        empty = _empty_cells(raw, features)
        if empty.any():
            raw = raw.copy()
            for j, name in enumerate(features):
                if empty[:, j].any():
                    raw[name] = raw[name].where(~empty[:, j], "0")
        earlier = self._file_offsets
        if earlier is None and carry.tail is not None:
            earlier = carry.tail.utc_offset is not None
        table = check_table(raw, source, features, labels="optional", first_row=first_row,
                            previous_time=self._file_last, earlier_offsets=earlier, names=self.names)
        self._file_last, self._file_offsets = table.time[-1], table.utc_offset is not None
        n_seen = self._seen(table, raw, source, first_row)
        self.skipped += n_seen
        if n_seen == len(table):
            return None
        table, empty, first_row = table.subset(slice(n_seen, None)), empty[n_seen:], first_row + n_seen
        held = self._missing(table, empty, source, first_row)
        first_new = 0 if carry.tail is None else len(carry.tail)
        if emit:
            self._steps(table.time)
        table = _concat(carry.tail, table)
        held = held if carry.held is None else np.concatenate([carry.held, held])
        staged = pre.rows(table, first_segment_start=carry.tail_start)
        ends = pre.window_ends(staged)
        if emit:
            self.coverage = add_summaries(self.coverage, no_window_summary(pre.no_window(staged, ends)[first_new:]))
        ends = ends[staged.source_row[ends] >= first_new]
        out = None
        if emit:
            self.new_rows += len(table) - first_new
            self._check_quality(table, staged, first_new)
            if len(ends):
                out = self._score(table, staged, ends, held, source)
        keep = pre.context_start(staged)
        carry.tail_start = staged.table_segment_start[keep] if keep < len(table) else None
        carry.tail, carry.held = table.subset(slice(keep, None)), held[keep:]
        carry.last_time = table.time[-1]
        carry.rows += len(table) - first_new
        return out

    def _seen(self, table: Table, raw, source, first_row: int) -> int:
        """How many leading rows were seen already (times up to the carried last row); a row in
        that span that is not one of the carried rows was never seen: refused."""
        last = self.carry.last_time
        if last is None:
            return 0
        n = int(np.searchsorted(table.time, last, side="right"))
        tail = self.carry.tail
        if n and tail is not None and len(tail):
            span = table.time[:n] >= tail.time[0]
            unseen = np.flatnonzero(span & ~np.isin(table.time[:n], tail.time))
            if unseen.size:
                i = int(unseen[0])
                time = self.names.time
                raise UserError(f"{source}: row {first_row + i}, column '{time}': {str(raw[time].iloc[i]).strip()!r} "
                                f"is not after the last row already scored ({format_times(last[None], _last_offset(tail))[0]}) "
                                "and was not among the rows scored; rows must arrive in time order")
        return n

    def _missing(self, table: Table, empty: np.ndarray, source, first_row: int) -> np.ndarray:
        """Apply --missing to the new rows' empty cells; per row, whether a cell was held."""
        if not empty.any():
            return np.zeros(len(table), dtype=bool)
        features = table.features
        if self.options.missing == "error":
            i, j = (int(v[0]) for v in np.nonzero(empty))
            raise UserError(f"{source}: row {first_row + i}, column {features[j]!r}: empty (a missing value); "
                            "give every sensor a value, or pass --missing hold to carry its last value forward")
        values = table.values.copy()
        values[empty] = np.nan
        previous = self.carry.tail.values[-1:] if self.carry.tail is not None and len(self.carry.tail) else \
            np.full((1, len(features)), np.nan)
        filled = pd.DataFrame(np.concatenate([previous, values])).ffill().to_numpy()[1:]
        still = np.argwhere(np.isnan(filled))
        if still.size:
            i, j = (int(v) for v in still[0])
            raise UserError(f"{source}: row {first_row + i}, column {features[j]!r}: empty, and no earlier value "
                            "of the sensor to hold")
        table.values = filled
        return empty.any(axis=1)

    def _steps(self, time: np.ndarray) -> None:
        self.checks.add_steps(time, self.carry.last_time)

    def _check_quality(self, table: Table, staged, first_new: int) -> None:
        new = staged.source_row >= first_new
        self.checks.add_rows(self.pre, table.values, first_new, staged.values[new], self.options.drift_sd)

    def _score(self, table: Table, staged, ends: np.ndarray, held: np.ndarray, source) -> pd.DataFrame:
        scorer, carry = self.scorer, self.carry
        windows = self.pre.windows(staged, ends)
        try:
            scores, names, shares = _explain(scorer.detector, windows, self.pre.features_)
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:  # NaN is never above the threshold: it would pass as "no alarm"
            raise UserError(f"{source}: the {scorer.detector.name} score of the window ending "
                            f"{windows.end_time[bad[0]]} is not finite (sensor values far outside the training range)")
        flags = flag(scores, scorer.threshold)
        end_time = windows.end_time
        # Episodes across pieces and calls: a flagged window opens one unless the previous flagged
        # window (perhaps of an earlier call) ended less than the merge gap before it.
        where = np.flatnonzero(flags)
        t = end_time[where].astype(np.int64)
        before = np.concatenate([[_seconds(carry.episode_last) if carry.episode_last is not None else -1], t[:-1]])
        opens = (before < 0) | (t - before >= scorer.merge_minutes * 60) if where.size else np.zeros(0, dtype=bool)
        ids = carry.episodes + np.cumsum(opens)
        episode = np.zeros(len(ends), dtype=np.int64)
        episode[where] = ids
        opened = np.zeros(len(ends), dtype=np.int8)
        opened[where[opens]] = 1
        rows = staged.source_row[ends]
        offsets = None if table.utc_offset is None else table.utc_offset[rows]
        times = format_times(end_time, offsets)
        columns = {"time": times, "score": scores, "flag": flags.astype(np.int8), "episode": episode,
                   "opened": opened}
        if self.options.missing == "hold":
            first = staged.source_row[ends - self.pre.lookback + 1] if self.pre.lookback > 1 else rows
            count = np.concatenate([[0], np.cumsum(held)])
            window_held = (count[rows + 1] - count[first]) > 0
            columns["held"] = window_held.astype(np.int8)
            self.held_windows += int(window_held.sum())
        if names is not None:
            for i in range(names.shape[1]):
                columns[f"sensor_{i + 1}"] = names[:, i]
                columns[f"share_{i + 1}"] = shares[:, i]
        if self.columns is None:
            self.columns = list(columns)
            assert self.header() == ",".join(self.columns) + "\n", (self.header(), self.columns)
        sensors = {}
        for k in np.flatnonzero(opened):
            self.opened.append({"id": int(episode[k]), "start": str(times[k]),
                                "sensors": [] if names is None else [str(s) for s in names[k]]})
            if names is not None:
                sensors[int(k)] = self._named(staged.values[ends[k]], names[k], shares[k])
        self.watch.windows(end_time.astype("datetime64[s]").astype(np.int64), times, scores, episode, opened,
                           scorer.threshold, sensors)
        if where.size:
            carry.episodes = int(ids[-1])
            carry.episode_last = end_time[where[-1]]
            if opens.any():
                carry.episode_start = end_time[where[opens][-1]]
            self.alarms += int(where.size)
            self.first_alarm = self.first_alarm or str(times[where[0]])
            self.last_alarm = str(times[where[-1]])
        carry.last_scored = end_time[-1]
        carry.windows += len(ends)
        self.windows += len(ends)
        return pd.DataFrame(columns, columns=self.columns)

    def _named(self, row: np.ndarray, names, shares) -> list[dict]:
        """An opening window's top sensors for its alert: share of the score, and the sensor's
        value in training SDs from its training mean in the window's last row (detrended, as
        the detector saw it)."""
        pre = self.pre
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (row - pre.mean_) / pre.scale_
        where = {name: j for j, name in enumerate(pre.features_)}
        return [{"name": str(n), "share": float(w), "z": float(z[where[n]]) if np.isfinite(z[where[n]]) else None}
                for n, w in zip(names, shares)]

    def header(self) -> str:
        columns = output_columns(len(self.pre.features_), self._has_sensors,
                                                 self.options.missing == "hold")
        return ",".join(columns) + "\n"


def _explain(detector, windows, features):
    """Per window, the detector's score and its top sensors with their shares (None for a
    detector without contributions), the windows split over the cores: a window's figures
    depend on that window alone (the detectors' products are row by row), so the bytes are
    those of one call."""
    def part(index):
        scores, contributions = detector.explain(windows.subset(index))
        return (scores, *((None, None) if contributions is None else top_sensors(contributions, features)))

    pieces = map_parts(part, parts(len(windows), EXPLAIN_MINIMUM))
    if len(pieces) == 1:
        return pieces[0]
    return tuple(None if column[0] is None else np.concatenate(column) for column in zip(*pieces))


def _last_offset(tail: Table):
    return None if tail.utc_offset is None else tail.utc_offset[-1:]


_QUOTED = (",", '"', "\n", "\r")  # a cell with one of these is quoted by the csv module


def to_csv(frame: pd.DataFrame) -> str:
    """The rows of ``frame`` as CSV, the bytes ``frame.to_csv(header=False, index=False)`` writes.

    pandas formats each column with ``astype(str)`` (float64: the shortest repr, as Python's
    ``repr`` writes it) and hands the cells to the csv module row by row; joining the same
    strings directly is faster. A column pandas would write otherwise (a missing or infinite number, a cell that
    needs quotes) goes through pandas.
    """
    cells = []
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind == "f":
            if not np.isfinite(values).all():
                return _pandas_csv(frame)
        elif values.dtype.kind in "OU":
            listed = values.tolist()
            texts = set(listed)
            if not all(type(text) is str for text in texts) or "" in texts or \
                    any(c in "\0".join(texts) for c in _QUOTED):
                return _pandas_csv(frame)
            cells.append(listed)  # every cell a str already: astype(str) would give the same strings
            continue
        elif values.dtype.kind not in "iub":
            return _pandas_csv(frame)
        if values.dtype == np.float64 or values.dtype.kind in "iub":
            cells.append(list(map(repr if values.dtype.kind == "f" else str, values.tolist())))  # = astype(str)
        else:
            cells.append(values.astype(str).tolist())
    if not len(frame):
        return ""
    return "\n".join(map(",".join, zip(*cells))) + "\n"


def _pandas_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(header=False, index=False, lineterminator="\n")


# -- inputs -------------------------------------------------------------------------------
def feed_file(stream: Stream, path, chunk_rows: int, emit: bool = True):
    """The output frames of ``path``, read in chunks. Three stages, each a thread: the next
    chunk is read while this one is scored, and scored while the caller writes the one before;
    the stream is the scoring thread's alone until the last frame is taken."""
    return ahead(_frames(stream, path, chunk_rows, emit))


def _frames(stream: Stream, path, chunk_rows: int, emit: bool):
    stream.start_input()
    rows = 0
    for raw in ahead(read_chunks(path, chunk_rows, stream.options.sep, stream.options.decimal, stream.names)):
        frame = stream.feed(raw, path, rows + 1, emit=emit)
        rows += len(raw)
        if frame is not None:
            yield frame


def seed(stream: Stream, history, chunk_rows: int) -> None:
    """Carry the rows of ``history`` as context: no window of it is scored."""
    for _ in feed_file(stream, history, chunk_rows, emit=False):
        pass


# -- the state file ---------------------------------------------------------------------------
def _pack(**arrays) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v for k, v in arrays.items() if v is not None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _time_or_none(value):
    return None if value is None else str(np.datetime64(value, "s"))


def state_json(carry: Carry, scorer: Scorer, run_dir, output: dict, watch: Watch) -> dict:
    tail = carry.tail
    arrays = {} if tail is None else dict(time=tail.time.astype(np.int64), values=tail.values, y=tail.y,
                                          utc_offset=tail.utc_offset, held=carry.held)
    return {
        "format": STATE_FORMAT,
        "run": {"path": str(Path(run_dir).resolve()), "fingerprint": scorer.fingerprint},
        "features": list(scorer.preprocessor.features_),
        "last_row": _time_or_none(carry.last_time),
        "last_scored": _time_or_none(carry.last_scored),
        "episode": {"last_id": carry.episodes, "start": _time_or_none(carry.episode_start),
                    "last_flagged": _time_or_none(carry.episode_last)},
        "rows": carry.rows,
        "windows": carry.windows,
        "output": output,
        "history": {"rows": 0 if tail is None else len(tail), "segment_start": _time_or_none(carry.tail_start),
                    "arrays": _pack(**arrays) if arrays else None},
        "alerts": watch.as_json(),
    }


def read_state(path: Path, scorer: Scorer, run_dir, options: ScoreOptions) -> tuple[Carry, dict, Watch]:
    """The carry, the output record and the alerting saved in ``path``, refused when malformed
    or written with another run (unless ``options.adopt``)."""
    adopt = options.adopt
    def broken(what):
        return UserError(f"{path}: not a score state written by this tool ({what}); move it away to start a new one")

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise broken(f"{type(exc).__name__}: {exc}") from None
    try:
        if data["format"] != STATE_FORMAT:
            raise broken(f"format {data['format']!r}")
        features = list(scorer.preprocessor.features_)
        if data["run"]["fingerprint"] != scorer.fingerprint:
            if not adopt:
                raise UserError(
                    f"{path}: written with another run ({data['run']['path']}): its detector, preprocessor or "
                    f"threshold differ from {run_dir}'s (a retrain or another run); pass --adopt to carry its rows "
                    "and open episode over to this run, or move the state away to start a new one")
            if data["features"] != features:
                raise UserError(f"{path}: written for other sensors than {run_dir}'s; move it away to start a new one")
        t = lambda v: None if v is None else np.datetime64(v, "s")  # noqa: E731
        carry = Carry(last_time=t(data["last_row"]), last_scored=t(data["last_scored"]),
                      episodes=int(data["episode"]["last_id"]), episode_start=t(data["episode"]["start"]),
                      episode_last=t(data["episode"]["last_flagged"]), rows=int(data["rows"]),
                      windows=int(data["windows"]), tail_start=t(data["history"]["segment_start"]))
        packed = data["history"]["arrays"]
        if packed is not None:
            with np.load(io.BytesIO(base64.b64decode(packed)), allow_pickle=False) as arrays:
                a = {k: arrays[k] for k in arrays.files}
            carry.tail = Table(a["time"].astype("datetime64[s]"), a["values"].astype(np.float64), features,
                               a.get("y"), a.get("utc_offset"))
            carry.held = a["held"].astype(bool)
            if carry.tail.values.shape != (len(carry.tail), len(features)) or len(carry.held) != len(carry.tail):
                raise broken("history arrays of the wrong shape")
        output = dict(data["output"])
        # A state from before alerting was tracked starts with nothing told.
        watch = Watch.start(data.get("alerts"), str(run_dir), scorer.merge_minutes, options.clear_minutes)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
        raise broken(f"{type(exc).__name__}: {exc}") from None
    return carry, output, watch


def checkpoint(label: str) -> None:
    """Between writing the output and writing the state: a hook for fault-injection tests."""


def _restore_output(record: dict) -> None:
    """Cut an output file back to the length the state recorded (a call killed after appending
    to it and before saving the state); refuse one that is shorter (edited by someone else)."""
    path, size = record.get("path"), record.get("bytes")
    if not path or path == STDIO or size is None:
        return
    path = Path(path)
    try:
        now = path.stat().st_size
    except FileNotFoundError:
        return
    if now > size:
        os.truncate(path, size)
    elif 0 < now < size:
        raise UserError(f"{path}: {now} bytes, shorter than the {size} this state wrote; it was edited or replaced "
                        "since the last call; move it away to start a new output file")


def _check_header(path: Path, header: str) -> None:
    with open(path, encoding="utf-8", newline="") as handle:
        first = handle.readline()
    if first != header:
        raise UserError(f"{path}: its header ({first.strip()!r}) is not this call's ({header.strip()!r}); "
                        "write to a new output file (another run, detector or --missing?)")


# -- the step ---------------------------------------------------------------------------------
def score(run_dir, input_path, out_path, options: ScoreOptions = ScoreOptions(), history=None,
          state_path=None, scorer: Scorer | None = None) -> dict:
    """Score the windows of ``input_path`` (a path, or ``-`` for standard input) with the run in
    ``run_dir`` and write them as CSV to ``out_path`` (``-``: standard output); returns a summary.

    ``history``: a CSV whose rows come before the input's, used only as context (detrending
    baselines, the first windows' earlier rows). ``state_path``: score only what is new since
    the last call with this state, append it to ``out_path``, and save the state again.
    ``scorer``: the run already loaded (:func:`score_many` loads it once for several inputs).
    """
    arguments = [str(p) for p in input_path] if isinstance(input_path, (list, tuple)) else [str(input_path)]
    input_path = " ".join(arguments)
    to_stdout = str(out_path) == STDIO
    if not to_stdout:
        out_path = Path(out_path)
        if state_path is not None and Path(state_path).resolve() == out_path.resolve():
            raise UserError(f"{state_path}: --state and --out are the same file")
    elif options.plot is not None:
        raise UserError("--plot draws the scores written to --out; give --out a file, not -")
    if scorer is None:
        scorer = load_scorer(run_dir, options.engine, options.wait, options.allow_pickle)
    stream = Stream(scorer, options, run=str(run_dir))
    if state_path is None:
        inputs = expand(arguments, options.sep, options.decimal, stream.names)
        _check_sources(out_path, inputs, run_dir, to_stdout)
        summary = _batch(stream, inputs, out_path, to_stdout, options, history)
        _tell(stream, run_dir, options, None)
    else:
        summary = _stateful(stream, run_dir, arguments, out_path, to_stdout, options, history, Path(state_path))
    result = {**_summary(stream, scorer, run_dir, input_path, out_path, options, state_path is not None), **summary,
              **stream.watch.summary()}
    if options.plot is not None:
        from lstm_rare_event.steps.report import plot_scores

        plot_scores(out_path, options.plot, threshold=scorer.threshold, merge_minutes=scorer.merge_minutes,
                    utc_offset_seconds=scorer.utc_offset_seconds)
        result["plot"] = str(options.plot)
    return result


#: what output_name strips from an input's name: Parquet, CSV and compressed CSV
INPUT_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip", ".csv", ".txt", ".tsv", ".parquet", ".pq")


def output_name(input_path) -> str:
    """``DIR/day-3.csv.gz`` -> ``day-3.scores.csv``: the file :func:`score_many` writes for it."""
    name = Path(input_path).name
    for _ in range(2):  # one compression suffix, then one format suffix
        for suffix in INPUT_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
    return f"{name}.scores.csv"


def score_many(run_dir, inputs, out_dir, options: ScoreOptions = ScoreOptions(), history=None,
               state_path=None, on_done=None) -> dict:
    """Score several inputs with one run, loaded once: each input to ``out_dir/<stem>.scores.csv``
    (written atomically), byte for byte what :func:`score` writes for it alone.

    Every input is scored even when one is bad: a bad input (a :class:`UserError`) is recorded
    in ``failed`` with its message and the next one is scored; the caller decides the exit
    code. Two inputs with the same output name, stdin, and ``history``/``state_path`` or a
    plot with several inputs are refused before anything is read. ``on_done(summary_or_failure)``
    is called after each input (the CLI prints its line there)."""
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise UserError("no INPUT to score")
    if any(str(p) == STDIO for p in inputs):
        raise UserError("--out-dir names each output after its input; stdin (-) has no name: use --out")
    if len(inputs) > 1:
        for what, given in (("--history", history), ("--state", state_path), ("--plot", options.plot)):
            if given is not None:
                raise UserError(f"{what} applies to a single INPUT; {len(inputs)} were given")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: --out-dir is a file, not a folder")
    seen: dict[str, Path] = {}
    for path in inputs:
        name = output_name(path)
        if name in seen:
            raise UserError(f"{seen[name]} and {path} would both write {out_dir / name}; "
                            "rename one, or score them in separate calls")
        seen[name] = path
    for name, path in seen.items():
        check_output(out_dir / name, path, run_dir)
    scorer = load_scorer(run_dir, options.engine, options.wait, options.allow_pickle)
    done, failed = [], []
    for name, path in seen.items():
        try:
            result = score(run_dir, path, out_dir / name, options, history=history, state_path=state_path,
                           scorer=scorer)
        except UserError as exc:
            if exc.exit_code != UserError.exit_code:
                raise  # not the input's fault (a busy state): stop as a single call would
            message = str(exc)
            result = {"input": str(path), "error": message if message.startswith(str(path))
                      else f"{path}: {message}"}
            failed.append(result)
        else:
            done.append(result)
        if on_done is not None:
            on_done(result)
    opened = [{"input": s["input"], **episode} for s in done for episode in s["episodes_opened"]]
    return {"run_dir": str(run_dir), "out_dir": str(out_dir), "inputs": done, "failed": failed,
            "episodes_opened": opened}


def _check_sources(out_path, inputs: Inputs, run_dir, to_stdout: bool) -> None:
    if not to_stdout:
        for source in inputs.sources:
            if not isinstance(source, Buffer):
                check_output(out_path, source, run_dir)


def _present(arguments: list[str], options: ScoreOptions, names: Columns) -> tuple[Inputs | None, list[str]]:
    """The INPUTs that are there, in time order, and a line for each one that is not (a day
    file before its first row): for a stateful call, a data condition rather than an error."""
    if STDIO in arguments:  # read once: expand takes standard input whole
        return expand(arguments, options.sep, options.decimal, names), []
    present, missing = [], []
    for argument in arguments:
        try:
            expand([argument], options.sep, options.decimal, names)
        except MissingInput as exc:
            missing.append(str(exc))
        else:
            present.append(argument)
    return (expand(present, options.sep, options.decimal, names) if present else None), missing


def feed_inputs(stream: Stream, inputs: Inputs | None, chunk_rows: int):
    """The output frames of every input file in turn (see :func:`feed_file`)."""
    for source in () if inputs is None else inputs.sources:
        yield from feed_file(stream, source, chunk_rows)


def _batch(stream: Stream, source: Inputs, out_path, to_stdout: bool, options: ScoreOptions, history) -> dict:
    if history is not None:
        seed(stream, Path(history), options.chunk_rows)
    if to_stdout:
        _write_all(stream, source, sys.stdout, options, history is None)
    else:
        with atomic_output(out_path) as handle:
            _write_all(stream, source, handle, options, history is None)
    return {}


def _write_all(stream: Stream, source, handle, options: ScoreOptions, need_windows: bool) -> None:
    """The whole output of ``source``; without history, an input too short for any window is
    an error (nothing is written)."""
    handle.write(stream.header())
    for frame in feed_inputs(stream, source, options.chunk_rows):
        handle.write(to_csv(frame))
    pre = stream.pre
    if need_windows and stream.new_rows + stream.skipped < pre.lookback:
        raise UserError(f"{source}: {stream.new_rows} data rows, fewer than one window of {pre.lookback} rows "
                        "(the run's lookback)")
    if need_windows and stream.windows == 0:
        raise UserError(f"{source}: no window to score: no {pre.lookback} consecutive rows "
                        f"without a time gap (a step longer than {pre.max_gap_ / np.timedelta64(1, 's'):g} seconds)")


def _stateful(stream: Stream, run_dir, input_path, out_path, to_stdout: bool, options: ScoreOptions, history,
              state_path: Path) -> dict:
    lock = state_path.with_name(state_path.name + ".lock")
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{state_path.parent}: cannot create the state's folder ({exc.strerror})") from None
    with _flock(lock, fcntl.LOCK_EX, options.wait, f"another score call holds the state {state_path.name}"):
        record = None
        if state_path.exists():
            stream.carry, record, stream.watch = read_state(state_path, stream.scorer, run_dir, options)
            _restore_output(record)
        created = record is None
        if created and history is not None:
            seed(stream, Path(history), options.chunk_rows)
        out_record = {"path": STDIO} if to_stdout else {"path": str(out_path.resolve())}
        if not to_stdout:
            size = out_path.stat().st_size if out_path.exists() else 0
            out_record["bytes"] = size
            if created:
                # The state before this call, so that a kill after the append below is undone.
                atomic_write_text(state_path, dumps(state_json(stream.carry, stream.scorer, run_dir, out_record,
                                                               stream.watch)))
        inputs, missing = _present(input_path, options, stream.names)
        if inputs is not None:
            _check_sources(out_path, inputs, run_dir, to_stdout)
            inputs = inputs.after(stream.carry.last_time)  # files wholly seen are not read again
        stream.watch.inputs(missing)
        frames = feed_inputs(stream, inputs, options.chunk_rows)
        if to_stdout:
            if created:
                sys.stdout.write(stream.header())
            for frame in frames:
                sys.stdout.write(to_csv(frame))
            sys.stdout.flush()
        else:
            out_record["bytes"] = _append(out_path, stream, frames)
        checkpoint("output")
        # Told before the state is saved: a call killed in between tells again (the same event
        # ids) rather than never; what a sink did not take is saved as pending.
        _tell(stream, run_dir, options, state_path)
        atomic_write_text(state_path, dumps(state_json(stream.carry, stream.scorer, run_dir, out_record,
                                                       stream.watch)))
    carry = stream.carry
    open_episode = None
    if carry.episode_last is not None and carry.last_scored is not None and \
            _seconds(carry.last_scored) - _seconds(carry.episode_last) < stream.scorer.merge_minutes * 60:
        open_episode = {"id": carry.episodes, "start": _time_or_none(carry.episode_start),
                        "last_flagged": _time_or_none(carry.episode_last)}
    return {"state": str(state_path), "skipped_rows": stream.skipped, "last_scored": _time_or_none(carry.last_scored),
            "open_episode": open_episode}


def _append(path: Path, stream: Stream, frames) -> int:
    """Append the frames to ``path`` (the header first when it is new or empty), flushed to
    disk; on an error, cut it back. Returns its new length in bytes."""
    header = stream.header()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a", encoding="utf-8", newline="")
    except OSError as exc:
        raise UserError(f"{path}: cannot write the output ({exc.strerror})") from None
    start = handle.tell()
    try:
        with handle:
            if start == 0:
                handle.write(header)
            else:
                _check_header(path, header)
            for frame in frames:
                handle.write(to_csv(frame))
            handle.flush()
            os.fsync(handle.fileno())
            return handle.tell()
    except BaseException:
        os.truncate(path, start)
        raise


def _tell(stream: Stream, run_dir, options: ScoreOptions, state_path: Path | None) -> None:
    """The call's alerting: an episode past the merge gap resolved, the data conditions
    updated, each event printed and handed to the sinks, the metrics rewritten."""
    carry, watch = stream.carry, stream.watch
    findings = stream.checks.findings(stream.pre, options.drift_sd)
    watch.finish(None if carry.last_scored is None else _seconds(carry.last_scored), stream.checks, findings,
                 _time_or_none(carry.last_time))
    watch.tell(options.sinks)
    if options.sinks.metrics is not None:
        values = {"last_score": watch.last_score, "threshold": stream.scorer.threshold,
                  "episode_id": carry.episodes, "rows_scored_total": carry.rows,
                  "windows_scored_total": carry.windows,
                  "last_row_timestamp_seconds": None if carry.last_time is None else _seconds(carry.last_time),
                  "run_age_seconds": run_age(run_dir)}
        watch.metrics(options.sinks, values, Path(state_path).stem if state_path is not None else "batch")


def run_age(run_dir) -> float | None:
    """Seconds since the run's threshold was chosen (its threshold.json written)."""
    try:
        return max(time.time() - (Path(run_dir) / THRESHOLD_JSON).stat().st_mtime, 0.0)
    except OSError:
        return None


def _summary(stream: Stream, scorer: Scorer, run_dir, input_path, out_path, options: ScoreOptions,
             stateful: bool) -> dict:
    findings = stream.checks.findings(stream.pre, options.drift_sd)
    warnings = [{"kind": kind, "sensors": list(f.sensors), "message": f.message} for kind, f in findings.items()]
    coverage = stream.coverage or no_window_summary(np.zeros(0, dtype=np.int8))
    if coverage["windowed"] < coverage["rows"]:
        line, large = no_window_line(coverage, "new rows")
        # Every few minutes from cron, only the told transitions may reach the mail.
        (log.warning if large and not stateful else log.info)(f"{input_path}: {line}")
    summary = {
        "input": str(input_path),
        "output": str(out_path),
        "run_dir": str(run_dir),
        "detector": scorer.detector.name,
        "sensors": "named per window" if stream._has_sensors else
                   f"none: the {scorer.detector.name} detector uses no sensor",
        "rows": stream.new_rows,
        "windows": stream.windows,
        "alarms": stream.alarms,
        "first_alarm": stream.first_alarm,
        "last_alarm": stream.last_alarm,
        "episodes_opened": stream.opened,
        "merge_minutes": scorer.merge_minutes,
        "threshold": scorer.threshold,
        "engine": scorer.detector.engine,
        "warnings": warnings,
        "coverage": coverage,
    }
    if options.missing == "hold":
        summary["held_windows"] = stream.held_windows
    return summary


def summary_line(summary: dict) -> str:
    """One line: windows and rows scored, alarms, the episodes this call opened (the alert),
    or the episode still open."""
    alarms = summary["alarms"]
    line = f"scored {summary['windows']:,} windows ({summary['rows']:,} rows)"
    if summary.get("skipped_rows"):
        line += f", {summary['skipped_rows']:,} rows seen before skipped"
    line += f": {alarms:,} alarm{'' if alarms == 1 else 's'}"
    if alarms:
        line += f", first {summary['first_alarm']}, last {summary['last_alarm']}"
    opened = summary["episodes_opened"]
    if opened:
        first = opened[0]
        sensors = f" (top sensors {', '.join(first['sensors'])})" if first["sensors"] else ""
        more = f", {len(opened)} new alarm episodes, the first" if len(opened) > 1 else "; new alarm episode"
        line += f"{more} (#{first['id']}) opened at {first['start']}{sensors}"
    elif summary.get("open_episode"):
        line += f"; alarm episode {summary['open_episode']['id']} still open"
    return f"{line} -> {summary['output']}"

"""The streaming engine: raw rows in pieces of any size, scored as one pass over them would.

:class:`Stream` takes raw rows in pieces (chunks of a file, files one after another, calls one
after another), carries the raw rows that the next windows need (:class:`Carry`: the detrending
baselines and the window's earlier rows), skips rows it has seen, scores only windows that end
in new rows, and flags them and numbers their alarm episodes with the run's alarm rule, the open
episode carried from piece to piece. Batch and stateful calls (:mod:`.calls`), the backtest and
the Python API all score through it, so they write the same numbers for the same rows.

Why one module of about 400 lines: the Stream and its Carry share the piece-by-piece
bookkeeping (which rows are new, which were held, where the carried tail starts, which episode
is open); split, each half would need the other's internals. What the rows say about the data
(:class:`~lstm_rare_event.alerts.conditions.DataChecks`) and the alerts of each piece
(:class:`~lstm_rare_event.alerts.watch.Watch`) are the alerting layer's.

NumPy and pandas only: this runs every two minutes from cron.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lstm_rare_event.alarms.rule import AlarmRule, OpenEpisode
from lstm_rare_event.alarms.sensors import top_sensors
from lstm_rare_event.alerts.conditions import DEFAULT_CLEAR_MINUTES, DEFAULT_DRIFT_SD, DataChecks
from lstm_rare_event.alerts.sinks import SinkOptions
from lstm_rare_event.alerts.watch import Watch
from lstm_rare_event.errors import UserError
from lstm_rare_event.parallel import ahead, map_parts, parts
from lstm_rare_event.preprocess.csv import CHUNK_ROWS, Buffer, Columns, Table, check_table, read_chunks
from lstm_rare_event.preprocess.plain import TextTable, read_plain
from lstm_rare_event.preprocess.preprocessor import Preprocessor, add_summaries, no_window_summary
from lstm_rare_event.preprocess.spans import parse_gap
from lstm_rare_event.run import DEFAULT_WAIT, Run, resolve_run, through_link
from lstm_rare_event.scoring.output import STDIO, Lines, every_row, format_times, output_columns

# pandas (a quarter of a second to import) is imported by the functions that use it: a
# score call of a few plain rows uses none of them.
if TYPE_CHECKING:
    import pandas as pd

MISSING = ("error", "hold")
EXPLAIN_MINIMUM = 2048  # windows per thread: fewer are scored on one (a thread costs more than it saves)


@dataclass(frozen=True)
class Scorer:
    """Everything scoring needs from a run, loaded once."""

    preprocessor: Preprocessor
    detector: object
    rule: AlarmRule
    #: sha256 over the hashes of the preprocessor, detector and threshold files: which run this is
    fingerprint: str = ""
    #: the training data's UTC offset, for figures in the data's own time zone
    utc_offset_seconds: int | None = None
    #: the run directory loaded: ``run_dir`` as given, or the run its link pointed to then
    run: Path | None = None
    #: the run's files as verified (:meth:`.Run.verified`), for a score state to remember
    verified: dict | None = None


def load_scorer(run_dir, engine: str | None = None, wait: float = 60.0, allow_pickle: bool = False,
                known=None) -> Scorer:
    """The run's preprocessor, detector and threshold, read as one consistent snapshot and
    refused when they do not come from one run. A link (``current``) is followed once; the
    caller uses :attr:`Scorer.run` from then on, as the link may be replaced meanwhile.
    ``known(run)``: the verification an earlier call remembered for the run directory ``run``
    (see :meth:`.Run.digest`), or None."""
    resolved = resolve_run(run_dir)
    run = Run(resolved, None if known is None else known(resolved))
    with through_link(run_dir, resolved), run.reading(wait):
        run.check_scorable()
        rule = run.threshold().alarm_rule
        fingerprint = hashlib.sha256(json.dumps(sorted(run.inputs.items())).encode()).hexdigest()
        preprocessor, detector = run.preprocessor(), run.detector(engine=engine, allow_pickle=allow_pickle)
        return Scorer(preprocessor, detector, rule, fingerprint, run.utc_offset_seconds(), resolved, run.verified())


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
    #: how the input is written (historian exports: sep=";", decimal=","); None: as the run's file was
    sep: str | None = None
    decimal: str | None = None
    #: a line for every input row, those that end no window with an empty score and flag 0
    all_rows: bool = False
    #: a y column with the input's label of each line's row, and a line (empty score) for each
    #: break row the label shift keeps out of the windows; the input must have the label column
    keep_labels: bool = False
    #: a figure of the scored period, its alarm episodes and their top sensors
    plot: Path | None = None
    #: where events go besides stderr (--alert-cmd, --alert-log, --metrics); their time budget is --wait
    sinks: SinkOptions = SinkOptions()
    #: minutes of rows without a data condition before it is told cleared
    clear_minutes: float = DEFAULT_CLEAR_MINUTES
    #: the input is stale (a data condition) when its newest row stays the newest this long of wall
    #: clock between stateful calls: a duration (30min) or rows of the run's cadence (15rows), 0
    #: never; None: 15 rows and 10 minutes at least (alerts.conditions.STALE_ROWS, STALE_MINUTES)
    stale_after: str | None = None
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
        if self.stale_after is not None:
            parse_gap(self.stale_after, "--stale-after")

    @property
    def stale(self):
        """--stale-after as the watch reads it (rows, or a duration), None for the default."""
        return None if self.stale_after is None else parse_gap(self.stale_after, "--stale-after")

    def columns(self, trained: Columns) -> Columns:
        """The input's columns: those given here, the others as in training."""
        pick = lambda given, default: default if given is None else given  # noqa: E731
        return Columns(pick(self.time_column, trained.time), pick(self.label_column, trained.label),
                       pick(self.time_format, trained.time_format))

    def reading(self, pre) -> tuple[str, str]:
        """The input's separator and decimal mark: those given here, the others as in training."""
        return (pre.sep_ if self.sep is None else self.sep), (pre.decimal_ if self.decimal is None else self.decimal)


@dataclass
class Carry:
    """What one piece of rows hands the next (and one call the next, through the state file)."""

    tail: Table | None = None  # the last raw rows, as many as the next windows need
    held: np.ndarray | None = None  # (len(tail),) bool: cells of the row filled by --missing hold
    tail_start: np.datetime64 | None = None  # restart time of the tail's first segment
    last_time: np.datetime64 | None = None  # the last raw row seen
    last_scored: np.datetime64 | None = None  # end time of the last window scored
    episode: OpenEpisode = OpenEpisode()  # the latest alarm episode, which the next flagged window may continue
    rows: int = 0  # raw rows taken in, all calls
    windows: int = 0  # windows scored, all calls
    adopted: tuple = ()  # the runs this carry was adopted from (--adopt), oldest first; see .state


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
    import pandas as pd

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
        self.sep, self.decimal = options.reading(self.pre)
        self.carry = carry or Carry()
        self.checks = DataChecks()
        self.watch = Watch.start(None, run, scorer.rule.merge_minutes)  # a stateful call's comes from its state
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

    def feed(self, raw: pd.DataFrame | TextTable, source, first_row: int, emit: bool = True) -> Lines | None:
        """Take one raw chunk of ``source`` (its first data row is ``first_row``): a DataFrame
        as :func:`.csv.read_chunks` gives it, or a small input's :class:`.plain.TextTable`.
        Return the output rows of the windows ending in its new rows (None without any), or,
        with ``emit`` False (history), only carry its rows forward."""
        pre, carry = self.pre, self.carry
        features = pre.select(raw.columns, source, self.names)
        if raw.empty:
            return None
        earlier = self._file_offsets
        if earlier is None and carry.tail is not None:
            earlier = carry.tail.utc_offset is not None
        checked = raw.check(features, first_row, self._file_last, earlier, self.names) \
            if isinstance(raw, TextTable) else None
        if checked is not None:
            (table, empty), time_text = checked, raw.time_text(self.names)
        else:
            if isinstance(raw, TextTable):  # a cell that is not plain: read by pandas, as it was before
                raw = raw.frame()
            table, empty = self._check_frame(raw, source, features, first_row, earlier)
            time_text = raw[self.names.time]
        self._file_last, self._file_offsets = table.time[-1], table.utc_offset is not None
        return self.feed_table(table, source, first_row, emit, empty, time_text)

    def _check_frame(self, raw: pd.DataFrame, source, features, first_row: int, earlier) -> tuple[Table, np.ndarray]:
        """The checked rows of a chunk pandas read, and its empty sensor cells (read as 0)."""
        empty = _empty_cells(raw, features)
        if empty.any():
            raw = raw.copy()
            for j, name in enumerate(features):
                if empty[:, j].any():
                    raw[name] = raw[name].where(~empty[:, j], "0")
        table = check_table(raw, source, features, labels="optional", first_row=first_row,
                            previous_time=self._file_last, earlier_offsets=earlier, names=self.names)
        return table, empty

    def feed_table(self, table: Table, source, first_row: int = 1, emit: bool = True, empty: np.ndarray | None = None,
                   time_text=None) -> Lines | None:
        """As :meth:`feed`, for rows read already: ``table`` holds the run's features in its
        order, times ascending; ``empty`` marks its empty cells (None: none) and ``time_text`` is
        the time column as read (for messages; None: the times as parsed)."""
        pre, carry = self.pre, self.carry
        if emit and self.options.keep_labels and table.y is None:
            raise UserError(f"{source}: no label column {self.names.label!r} to keep (--keep-labels); score it "
                            "without --keep-labels, or name its label column with --label-column")
        if empty is None:
            empty = np.zeros(table.values.shape, dtype=bool)
        n_seen = self._seen(table, time_text, source, first_row)
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
        every_end = pre.window_ends(staged)
        if emit:
            self.coverage = add_summaries(self.coverage, no_window_summary(pre.no_window(staged, every_end)[first_new:]))
        new = staged.source_row[every_end] >= first_new
        ends = every_end[new]
        # The windows before the new ones that their smoothed scores look back on (the carried
        # rows hold them whole: see context_start below); scored again, never written.
        before = every_end[~new][len(every_end[~new]) - self._smoothed_back():]
        out = None
        if emit:
            self.new_rows += len(table) - first_new
            self._check_quality(table, staged, first_new)
            if len(ends):
                out = self._score(table, staged, ends, held, source, before)
            lines = self._lines(table, staged, ends, first_new)
            if lines is not None:
                offsets = None if table.utc_offset is None else table.utc_offset[lines]
                out = every_row(out, format_times(table.time[lines], offsets),
                                np.searchsorted(lines, staged.source_row[ends]), self.header(),
                                table.y[lines] if self.options.keep_labels else None)
        keep = pre.context_start(staged, every_end[len(every_end) - self._smoothed_back():])
        carry.tail_start = staged.table_segment_start[keep] if keep < len(table) else None
        carry.tail, carry.held = table.subset(slice(keep, None)), held[keep:]
        carry.last_time = table.time[-1]
        carry.rows += len(table) - first_new
        return out

    def _lines(self, table: Table, staged, ends: np.ndarray, first_new: int) -> np.ndarray | None:
        """The rows of ``table`` that get an output line when not every line is a window (None):
        every new row with --all-rows; with --keep-labels, the windows' rows and the new break
        rows the label shift dropped, so that every break of the input is in the output."""
        if self.options.all_rows:
            return np.arange(first_new, len(table))
        if not self.options.keep_labels:
            return None
        dropped = np.setdiff1d(np.arange(first_new, len(table)), staged.source_row, assume_unique=True)
        return np.union1d(staged.source_row[ends], dropped) if dropped.size else None

    def _seen(self, table: Table, time_text, source, first_row: int) -> int:
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
                shown = str(table.time[i]) if time_text is None else str(list(time_text)[i]).strip()
                raise UserError(f"{source}: row {first_row + i}, column '{time}': {shown!r} "
                                f"is not after the last row already scored ({format_times(last[None], _last_offset(tail))[0]}) "
                                "and was not among the rows scored; rows must arrive in time order")
        return n

    def _missing(self, table: Table, empty: np.ndarray, source, first_row: int) -> np.ndarray:
        """Apply --missing to the new rows' empty cells; per row, whether a cell was held."""
        if not empty.any():
            return np.zeros(len(table), dtype=bool)
        import pandas as pd

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

    def _smoothed_back(self) -> int:
        """How many windows before a window its score looks back on (the alarm rule's smoothing)."""
        return self.scorer.rule.smooth - 1

    def _score(self, table: Table, staged, ends: np.ndarray, held: np.ndarray, source,
               before: np.ndarray) -> Lines:
        """The output rows of the windows ending at ``ends``, after the windows ending at
        ``before`` (scored only for the smoothing of the first ones)."""
        scorer, carry = self.scorer, self.carry
        windows = self.pre.windows(staged, np.concatenate([before, ends]) if len(before) else ends)
        try:
            scores, names, shares = _explain(scorer.detector, windows, self.pre.features_)
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:  # NaN is never above the threshold: it would pass as "no alarm"
            raise UserError(f"{source}: the {scorer.detector.name} score of the window ending "
                            f"{windows.end_time[bad[0]]} is not finite (sensor values far outside the training range)")
        if scorer.rule.smooth > 1:
            scores = scorer.rule.smoothed(scores, windows.segment_start)
        if len(before):
            new = slice(len(before), None)
            windows, scores = windows.subset(new), scores[new]
            names, shares = (None, None) if names is None else (names[new], shares[new])
        end_time = windows.end_time
        alarms = scorer.rule.episodes(end_time, scores, carry.episode)
        flags, episode, opened = alarms.flag, alarms.number, alarms.opened.astype(np.int8)
        where = np.flatnonzero(flags)
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
        if self.options.keep_labels:
            columns["y"] = table.y[rows].astype(np.int8)
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
                           scorer.rule.value, sensors)
        carry.episode = alarms.after
        if where.size:
            self.alarms += int(where.size)
            self.first_alarm = self.first_alarm or str(times[where[0]])
            self.last_alarm = str(times[where[-1]])
        carry.last_scored = end_time[-1]
        carry.windows += len(ends)
        self.windows += len(ends)
        return Lines(columns)

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
        columns = output_columns(len(self.pre.features_), self._has_sensors, self.options.missing == "hold",
                                 self.options.keep_labels)
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


# -- inputs -------------------------------------------------------------------------------
def feed_file(stream: Stream, path, chunk_rows: int, emit: bool = True, first_row: int = 1):
    """The output frames of ``path``, read in chunks. Three stages, each a thread: the next
    chunk is read while this one is scored, and scored while the caller writes the one before;
    the stream is the scoring thread's alone until the last frame is taken. Rows held in memory
    that make one chunk (a piece of a followed file) are read and scored in the caller's
    thread: with nothing to overlap, the threads' hand-overs would only add latency.
    ``first_row``: the number of ``path``'s first data row in messages (a piece of a followed
    file starts further on). A small input of plain cells is read without pandas
    (:mod:`~lstm_rare_event.preprocess.plain`)."""
    plain = read_plain(path, chunk_rows, stream.sep, stream.decimal, stream.names)
    one_chunk = plain is not None or isinstance(path, Buffer) and path.getvalue().count(b"\n") <= chunk_rows
    stage = iter if one_chunk else ahead
    return stage(_frames(stream, path, chunk_rows, emit, first_row, stage, plain))


def _frames(stream: Stream, path, chunk_rows: int, emit: bool, first_row: int, stage, plain):
    stream.start_input()
    rows = first_row - 1
    chunks = (plain,) if plain is not None else read_chunks(path, chunk_rows, stream.sep, stream.decimal, stream.names)
    for raw in stage(chunks):
        frame = stream.feed(raw, path, rows + 1, emit=emit)
        rows += len(raw)
        if frame is not None:
            yield frame


def seed(stream: Stream, history, chunk_rows: int) -> None:
    """Carry the rows of ``history`` as context: no window of it is scored."""
    for _ in feed_file(stream, history, chunk_rows, emit=False):
        pass



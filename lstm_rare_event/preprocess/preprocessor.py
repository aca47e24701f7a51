"""Rows to windows, one code path for every step: the :class:`Preprocessor`.

``prepare`` fits it (the scaler, on normal training rows only) and saves it; ``score``,
``backtest`` and near-real-time scoring load it and push new rows through exactly the same
transform. The order follows the recipe: detrend the raw rows (optional), shift the labels
ahead and drop the break rows, cut windows, then scale and clip.

Why one module of about 470 lines: the transform must be one code path for every step, and
its fitted state (layout, detrending, scaler) is read by each stage of it.

NumPy and pandas only: scoring loads this on every call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lstm_rare_event import log
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import Params, load_npz, read_json, save_npz, write_json
from lstm_rare_event.preprocess.csv import (
    DEFAULT_DROP, LABEL, TIME, Columns, Table, sampling_interval, select_features,
)
from lstm_rare_event.preprocess.detrend import detrend
from lstm_rare_event.preprocess.labels import interval_labels, shift_labels
from lstm_rare_event.preprocess.rowfile import NpyWriter, RowFile, blocks
from lstm_rare_event.preprocess.spans import as_duration, parse_span
from lstm_rare_event.preprocess.windows import (
    WindowArray, Windows, load_rows, recipe_window_ends, segment_starts, segments, window_ends,
)

FORMAT = "lstm-rare-event/preprocessor/1"
CONFIG_JSON = "preprocessor.json"
SCALER_NPZ = "scaler.npz"
NAT = np.datetime64("NaT", "s")
# What a label of 1 means: events, a break on that row (--shift labels the rows before it, the row
# itself is dropped); intervals, an anomalous row (an interval is a run of them; kept, not shifted).
LABELS = ("events", "intervals")
# Why a row of the table ends no window (0: it ends one).
NO_WINDOW = ("before_first_window", "after_gap", "label_dropped", "split_boundary")
WINDOWED, BEFORE_FIRST_WINDOW, AFTER_GAP, LABEL_DROPPED, SPLIT_BOUNDARY = range(5)
# A warning when more than this share of the rows ends no window, of at least NO_WINDOW_WARNING_ROWS
# rows: in fewer (a call from cron, a test file) the first window's lookback - 1 rows alone can be.
NO_WINDOW_WARNING_SHARE = 0.1
NO_WINDOW_WARNING_ROWS = 100


def default_max_gap(interval: np.timedelta64) -> np.timedelta64:
    """The longest step that is not a time gap, by default: 1.5 cadences, and at least the cadence
    plus one second. A late sample is jitter and a missing one a gap (a step of 2 cadences or
    more); with times written in whole seconds, a sampler a little slower than its nominal second
    writes a 2-second step now and then (SKAB: 5 % of its steps), which is no gap. On the real
    file (2-minute rows, times in minutes) that is 3 minutes: every gap of the exact rule (any
    step over the cadence) stays one, as its steps are whole cadences."""
    one = np.timedelta64(1, "s")
    return max(interval * 3 // 2, interval + one)


@dataclass(frozen=True)
class PreprocessOptions:
    """How rows become windows; the defaults are the tool's, not the recipe's."""

    shift: int = 2
    lookback: int = 5
    drop: tuple[str, ...] = DEFAULT_DROP
    features: tuple[str, ...] | None = None
    allow_gaps: bool = False
    # Chosen on the real data, kept by the walk-forward study (bench/backtest.md); 0 reproduces the recipe.
    detrend: int = 30
    clip: float = 10.0
    # The longest step between rows that is not a time gap: a duration (90s, 5min) or a number of
    # cadences; None: default_max_gap.
    max_gap: str | None = None
    labels: str = "events"
    # How the file names its time and label columns and writes its times (see csv.Columns).
    time_column: str = TIME
    label_column: str = LABEL
    time_format: str | None = None

    def __post_init__(self):
        if self.labels not in LABELS:
            raise UserError(f"--labels must be one of {', '.join(LABELS)}, got {self.labels!r}")
        if self.labels == "intervals":
            if self.shift not in (0, PreprocessOptions.shift):
                raise UserError(f"--shift {self.shift} labels the rows before each break (--labels events); "
                                "interval labels are never shifted: leave --shift out")
            object.__setattr__(self, "shift", 0)  # the default shift is the events' default
        if self.shift < 0:
            raise UserError(f"--shift must be 0 or more, got {self.shift}")
        if self.lookback < 1:
            raise UserError(f"--lookback must be 1 or more, got {self.lookback}")
        if self.detrend < 0:
            raise UserError(f"--detrend must be 0 (off) or a number of rows, got {self.detrend}")
        if not (math.isfinite(self.clip) and self.clip >= 0):
            raise UserError(f"--clip must be 0 (off) or a finite number of standard deviations, got {self.clip:g}")
        if self.features is not None:
            if len(set(self.features)) != len(self.features):
                twice = sorted({f for f in self.features if self.features.count(f) > 1})
                raise UserError(f"--features names {', '.join(twice)} more than once")
            reserved = [f for f in self.features if f in (self.time_column, self.label_column)]
            if reserved:
                raise UserError(f"--features may not include '{reserved[0]}': it is the "
                                f"{'label' if reserved[0] == self.label_column else 'time'} column, not a sensor")
        self.columns  # noqa: B018 - checks the column names and the time format
        if self.max_gap is not None:
            object.__setattr__(self, "max_gap", str(self.max_gap))  # a number of cadences may come as a number
            parse_span(self.max_gap, "--max-gap")

    @property
    def columns(self) -> Columns:
        return Columns(self.time_column, self.label_column, self.time_format)

    @property
    def context_rows(self) -> int:
        """Raw rows before a window's last row that its values depend on: lookback - 1 rows of
        the window, the first of which needs ``detrend`` rows before it for its baseline.

        Exact unless break rows were dropped inside a window (labelled rows with
        ``allow_gaps``); :meth:`Preprocessor.context_start` is exact in every case."""
        return self.detrend + self.lookback - 1


@dataclass
class Rows:
    """Rows after detrending and the label shift, ready to be cut into windows.

    values are detrended but not scaled; ``source_row`` is each row's index in the table it
    came from (break rows are gone when labels were shifted); ``window_segment`` is the
    segment id that the window rule uses (all one segment when windows may span gaps).
    """

    time: np.ndarray
    values: np.ndarray
    y: np.ndarray
    event_time: np.ndarray
    segment_start: np.ndarray
    window_segment: np.ndarray
    source_row: np.ndarray
    table_segment_start: np.ndarray  # (T,) per row of the table, break rows included


    def __len__(self) -> int:
        return len(self.time)


class Preprocessor:
    """Fit on training rows, then turn any rows of the same sensors into windows."""

    def __init__(self, options: PreprocessOptions = PreprocessOptions()):
        self.options = options
        self.features_: list[str] | None = None
        self.interval_: np.timedelta64 | None = None
        self.max_gap_: np.timedelta64 | None = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        # How the training file was written (its separator and decimal mark): score reads new
        # files so unless told otherwise, as it reads the time and label columns of the options.
        self.sep_, self.decimal_ = ",", "."

    @property
    def lookback(self) -> int:
        return self.options.lookback

    @property
    def context_rows(self) -> int:
        return self.options.context_rows

    def context_start(self, rows: Rows, whole=()) -> int:
        """The first row of the table ``rows`` came from that windows ending in rows appended
        after it depend on: the raw rows of its last lookback - 1 kept rows, and ``detrend`` rows
        before those. ``len(table) - context_rows``, unless break rows were dropped among them
        (with ``allow_gaps`` a window spans a dropped break row, so it reaches further back).
        ``whole``: rows of ``rows`` that end windows to be cut again from the rows kept (a
        smoothed score looks back on them): their rows and baselines are kept too."""
        n_table = len(rows.table_segment_start)
        needed = self.lookback - 1
        if needed == 0:
            first = n_table
        elif len(rows) >= needed:
            first = int(rows.source_row[len(rows) - needed])
        else:
            first = 0
        if len(whole):
            first = min(first, int(rows.source_row[int(np.min(whole)) - needed]))
        return max(first - self.options.detrend, 0)

    @property
    def interval_minutes(self) -> float:
        return float(self.interval_ / np.timedelta64(1, "m"))

    def select(self, columns, source, names: Columns | None = None) -> list[str]:
        """The feature columns of a table: at fit time by the options, afterwards exactly the
        fitted ones under the same rule (extra columns only where the rule ignores them).
        ``names``: the table's time and label columns, when not named as in training."""
        names = self.options.columns if names is None else names
        chosen = select_features(columns, source, self.options.features, self.options.drop, names)
        if self.features_ is None:
            return chosen
        missing = [name for name in self.features_ if name not in chosen]
        if missing:
            raise UserError(f"{source}: missing column(s) {_names(missing)}, which the model was trained on")
        extra = [name for name in chosen if name not in self.features_]
        if extra:
            raise UserError(
                f"{source}: column(s) {_names(extra)} were not among the {len(self.features_)} training features; "
                f"a different feature set from training (prepare used every column but {names.time}, {names.label} and "
                f"{', '.join(self.options.drop) or 'none'}); drop them from the file"
            )
        return list(self.features_)

    def rows(self, table: Table, first_segment_start=None, values_to: Path | None = None) -> Rows:
        """Detrend ``table`` within its gap-free segments, then (when it has labels and the
        shift is on) label the rows before each break and drop the break rows; interval labels
        stay as they are.

        ``first_segment_start``: when the table continues earlier rows (a chunk of a stream),
        the restart time of its first segment, which began before the table did.
        ``values_to``: write the detrended values to this file (a :class:`RowFile`, read in
        blocks from a table whose values are one too) instead of holding them.
        """
        gap = self.max_gap_
        segment = segments(table.time, gap)
        seg_start = segment_starts(table.time, segment)
        if first_segment_start is not None and len(table):
            seg_start[segment == segment[0]] = first_segment_start
        n = len(table)
        if table.y is not None:
            shifted = shift_labels(table.y, self.options.shift) if self.options.labels == "events" \
                else interval_labels(table.y)
            keep, y, event_row = shifted.keep, shifted.y, shifted.event_row
        else:
            keep, y, event_row = np.ones(n, dtype=bool), np.zeros(n, dtype=np.int8), np.full(n, -1)
        time = table.time[keep]
        event_time = np.where(event_row >= 0, table.time[np.maximum(event_row, 0)], NAT) if n else time
        if self.options.allow_gaps:
            window_segment = np.zeros(len(time), dtype=np.int64)
        else:
            window_segment = segments(time, gap)
        values = self._detrended(table.values, segment, keep, values_to)
        return Rows(time, values, y, event_time, seg_start[keep], window_segment, np.flatnonzero(keep), seg_start)

    def _detrended(self, values, segment: np.ndarray, keep: np.ndarray, values_to: Path | None):
        """The kept rows' detrended values, a block at a time (see :func:`rowfile.blocks`). A
        block is read with the ``detrend`` rows before it, which its first baselines need: a
        trailing median never looks further back, so every block's values are those of one pass."""
        window = self.options.detrend
        out = [] if values_to is None else RowFile.create(values_to, len(self.features_))
        for start, stop in blocks(values):
            lo = max(start - window, 0)
            block = detrend(np.asarray(values[lo:stop]), segment[lo:stop], window)[start - lo:]
            out.append(block[keep[start:stop]])
        if values_to is not None:
            return out
        return out[0] if out else np.asarray(values)[keep]

    def window_ends(self, rows: Rows, recipe_index: bool = False) -> np.ndarray:
        """Rows that end a window. ``recipe_index``: the 2019 recipe's indexing, which starts
        two windows late (prepare --allow-gaps reproduces its random split with it)."""
        if recipe_index:
            return recipe_window_ends(len(rows), self.lookback)
        return window_ends(rows.window_segment, self.lookback)

    def no_window(self, rows: Rows, ends: np.ndarray, used: np.ndarray | None = None) -> np.ndarray:
        """(T,) per row of the table ``rows`` came from, why it ends no window (an index into
        NO_WINDOW, plus one), or WINDOWED. ``ends``: the rows that end a window; ``used``:
        those of them kept (by the split), when fewer."""
        reason = np.full(len(rows.table_segment_start), LABEL_DROPPED, dtype=np.int8)
        first = np.maximum(np.arange(len(rows)) - self.lookback + 1, 0)
        # A window cut at a gap would span it; otherwise the rows before it are too few.
        kept = np.where(rows.window_segment[first] != rows.window_segment, AFTER_GAP, BEFORE_FIRST_WINDOW)
        kept = kept.astype(np.int8)
        kept[ends] = WINDOWED
        if used is not None:
            kept[np.setdiff1d(ends, used)] = SPLIT_BOUNDARY
        reason[rows.source_row] = kept
        return reason

    def fit_layout(self, table: Table, sep: str = ",", decimal: str = ".") -> "Preprocessor":
        """Learn the feature columns, the cadence (the most common step between rows), the
        longest step that is not a time gap, and how the file was written (``sep``, ``decimal``)."""
        self.features_ = list(table.features)
        self.sep_, self.decimal_ = sep, decimal
        self.interval_ = sampling_interval(table.time)
        given = None if self.options.max_gap is None else parse_span(self.options.max_gap, "--max-gap")
        self.max_gap_ = default_max_gap(self.interval_) if given is None else as_duration(given, self.interval_)
        if self.max_gap_ < self.interval_:
            raise UserError(f"--max-gap {self.options.max_gap}: shorter than the rows' cadence of "
                            f"{_duration(self.interval_)}, so every step would be a time gap")
        return self

    def refit(self, rows: Rows, train_ends: np.ndarray) -> "Preprocessor":
        """A copy with the same layout and a scaler fitted on other training windows (a
        walk-forward fold's)."""
        fold = Preprocessor(self.options)
        fold.features_, fold.interval_, fold.max_gap_ = self.features_, self.interval_, self.max_gap_
        fold.sep_, fold.decimal_ = self.sep_, self.decimal_
        return fold.fit_scaler(rows, train_ends)

    def fit_scaler(self, rows: Rows, train_ends: np.ndarray) -> "Preprocessor":
        """Fit the scaler on the last row of every normal training window."""
        if len(train_ends) == 0:
            raise UserError("no windows in the training split to fit the scaler on")
        normal = train_ends[rows.y[train_ends] == 0]
        if normal.size == 0 and self.options.labels == "intervals":
            log.warning("every training window lies in a labelled anomaly interval; the scaler fits on them all")
            normal = train_ends
        if normal.size == 0:
            raise UserError("no normal (y=0) windows in the training split to fit the scaler on")
        self.mean_, std = _moments(rows.values, np.sort(normal))
        # A sensor constant in training keeps its unit scale (as scikit-learn's StandardScaler does).
        self.scale_ = np.where(std > 1e-12 * np.maximum(1.0, np.abs(self.mean_)), std, 1.0)
        return self

    def scaled(self, values: np.ndarray) -> np.ndarray:
        """Standardize; with ``clip`` > 0, limit to [-clip, clip] standard deviations.

        A few sensors leave their training range by hundreds of standard deviations later in the
        data; unclipped, their squared errors swamp every other sensor's and the early stopping.
        """
        self._check_fitted()
        with np.errstate(over="ignore"):
            scaled = ((values - self.mean_) / self.scale_).astype(np.float32)
        clip = self.options.clip
        return np.clip(scaled, -clip, clip, out=scaled) if clip > 0 else scaled

    def windows(self, rows: Rows, ends: np.ndarray, scaled: np.ndarray | None = None) -> Windows:
        """The scaled windows ending at rows ``ends``, with their labels and times; ``scaled``:
        the rows already scaled (:meth:`write_scaled`)."""
        scaled = self.scaled(rows.values) if scaled is None else scaled
        return Windows(WindowArray(scaled, ends, self.lookback), rows.y[ends], rows.time[ends],
                       rows.event_time[ends], rows.segment_start[ends])

    def write_scaled(self, rows: Rows, path: Path) -> np.ndarray:
        """Scale ``rows`` block by block into the ``.npy`` file ``path``; returns it memory-mapped."""
        out = NpyWriter(path, (len(rows), len(self.features_)))
        for start, stop in blocks(rows.values):
            out.append(self.scaled(np.asarray(rows.values[start:stop])))
        out.close()
        return load_rows(path)

    def transform(self, table: Table) -> Windows:
        """Every window of ``table`` (the score path's rule: windows may start at the first row)."""
        rows = self.rows(table)
        return self.windows(rows, self.window_ends(rows))

    def _check_fitted(self):
        if self.mean_ is None:
            raise RuntimeError("the preprocessor is not fitted")

    def save(self, folder) -> None:
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / CONFIG_JSON, {
            "format": FORMAT,
            "options": asdict(self.options),
            "features": self.features_,
            "interval_seconds": int(self.interval_ / np.timedelta64(1, "s")),
            "max_gap_seconds": int(self.max_gap_ / np.timedelta64(1, "s")),
            "sep": self.sep_,
            "decimal": self.decimal_,
        })
        save_npz(folder / SCALER_NPZ, mean=self.mean_, scale=self.scale_)

    @classmethod
    def load(cls, folder, hint: str = "re-run prepare") -> "Preprocessor":
        folder = Path(folder)
        config = Params(read_json(folder / CONFIG_JSON, hint), folder / CONFIG_JSON, hint)
        config.text("format", (FORMAT,))
        raw = config.mapping("options")
        fields = {
            "shift": raw.integer("shift"),
            "lookback": raw.integer("lookback"),
            "drop": tuple(raw.strings("drop")),
            "features": _optional_strings(raw, "features"),
            "allow_gaps": raw.get("allow_gaps", bool, "true or false"),
            "detrend": raw.integer("detrend"),
            "clip": raw.number("clip"),
            # Runs prepared before these options existed read the defaults.
            "time_column": raw.get("time_column", str, "a column name", default=TIME),
            "label_column": raw.get("label_column", str, "a column name", default=LABEL),
            "time_format": _optional(raw, "time_format", str, "a strftime pattern, 'epoch' or null"),
            "max_gap": _optional(raw, "max_gap", str, "a duration, a number of rows, or null"),
            "labels": raw.get("labels", str, f"one of {', '.join(LABELS)}", lambda v: v in LABELS, default="events"),
        }
        try:
            pre = cls(PreprocessOptions(**fields))
        except UserError as exc:
            raise UserError(f"{folder / CONFIG_JSON}: {exc}; {hint}") from None
        pre.features_ = config.strings("features")
        pre.interval_ = np.timedelta64(config.integer("interval_seconds", lambda v: v > 0, "a positive integer"), "s")
        # Runs prepared before --max-gap took every step over the cadence for a gap.
        max_gap = config.get("max_gap_seconds", int, "a positive integer", lambda v: v > 0,
                             default=int(pre.interval_ / np.timedelta64(1, "s")))
        pre.max_gap_ = np.timedelta64(max_gap, "s")
        # Runs prepared before the separator was saved were read as CSV with the defaults.
        pre.sep_ = config.get("sep", str, "a column separator", default=",")
        pre.decimal_ = config.get("decimal", str, "'.' or ','", lambda v: v in (".", ","), default=".")
        arrays = load_npz(folder / SCALER_NPZ, ("mean", "scale"), "a scaler written by prepare")
        n = len(pre.features_)
        for key, value in arrays.items():
            if value.shape != (n,) or not np.isfinite(value).all():
                raise UserError(f"{folder / SCALER_NPZ}: '{key}' must be {n} finite numbers; {hint}")
        if not (arrays["scale"] > 0).all():
            raise UserError(f"{folder / SCALER_NPZ}: 'scale' must be positive; {hint}")
        pre.mean_, pre.scale_ = arrays["mean"].astype(np.float64), arrays["scale"].astype(np.float64)
        return pre


def _moments(values, picked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the mean and standard deviation of ``values[picked]`` (``picked`` sorted),
    in two passes over blocks of rows; for values in memory, one block, whose arithmetic is
    NumPy's own mean and std."""
    def picked_blocks():
        for start, stop in blocks(values):
            a, b = np.searchsorted(picked, [start, stop])
            if b > a:
                yield np.asarray(values[start:stop])[picked[a:b] - start]

    mean = sum(block.sum(axis=0) for block in picked_blocks()) / len(picked)
    var = sum(np.square(block - mean).sum(axis=0) for block in picked_blocks()) / len(picked)
    return mean, np.sqrt(var)


def _optional(params: Params, key: str, kind, expected: str):
    """A value of ``kind``, null, or (files written before the key existed) missing: None."""
    if key not in params.data:
        return None
    return params.get(key, (kind, type(None)), expected)


def _optional_strings(params: Params, key: str) -> tuple[str, ...] | None:
    """A list of strings or null; a missing key is an error like any other."""
    value = params.get(key, (list, type(None)), "a list of strings or null",
                       lambda v: v is None or all(isinstance(s, str) for s in v))
    return None if value is None else tuple(value)


def _duration(span: np.timedelta64) -> str:
    seconds = int(span / np.timedelta64(1, "s"))
    return f"{seconds // 60:g} min" if seconds % 60 == 0 else f"{seconds:g} s"


def no_window_summary(reasons: np.ndarray) -> dict:
    """Counts of :meth:`Preprocessor.no_window`'s reasons: rows, rows ending a window, and rows
    ending none by reason."""
    counts = np.bincount(reasons, minlength=len(NO_WINDOW) + 1)
    return {"rows": int(len(reasons)), "windowed": int(counts[WINDOWED]),
            "no_window": {name: int(counts[i + 1]) for i, name in enumerate(NO_WINDOW)}}


def add_summaries(first: dict | None, second: dict) -> dict:
    if first is None:
        return second
    return {"rows": first["rows"] + second["rows"], "windowed": first["windowed"] + second["windowed"],
            "no_window": {k: first["no_window"][k] + second["no_window"][k] for k in NO_WINDOW}}


def no_window_line(summary: dict, what: str) -> tuple[str, bool]:
    """(line, large): how many of ``what`` rows end no window and why; large when the share is
    over NO_WINDOW_WARNING_SHARE (of NO_WINDOW_WARNING_ROWS rows or more)."""
    missing = summary["rows"] - summary["windowed"]
    share = missing / summary["rows"] if summary["rows"] else 0.0
    why = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in summary["no_window"].items() if n)
    line = f"{missing:,} of the {summary['rows']:,} {what} ({share:.1%}) end no window, so get no score"
    line += f": {why}" if why else ""
    large = share > NO_WINDOW_WARNING_SHARE and summary["rows"] >= NO_WINDOW_WARNING_ROWS
    if large and summary["no_window"]["after_gap"]:
        line += "; steps longer than --max-gap are time gaps that no window spans"
    return line, large


def _names(names, n=8) -> str:
    shown = ", ".join(names[:n])
    return shown + (f", ... ({len(names) - n} more)" if len(names) > n else "")

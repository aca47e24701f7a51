"""Reading and checking sheet-break CSV files.

The real file (``time, y, x1..x61``) is CRLF, comma-separated, times like ``5/1/99 0:00``.
Files may also be gzip-compressed, LF, start with a UTF-8 BOM, use ISO 8601 times or epoch
seconds, order columns differently, carry extra columns, or name the time and label columns
otherwise (:class:`Columns`). Every problem becomes a one-line :class:`UserError` naming the
file, the column or row, and what was expected.

Why one module of about 600 lines: reading, parsing and checking share the row and column
bookkeeping that every message names; split, each message would need the other half's state.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.rowfile import RowFile

# pandas (a quarter of a second to import) is imported by the functions that use it: a
# score call of a few plain rows uses none of them.
if TYPE_CHECKING:
    import pandas as pd

TIME = "time"
LABEL = "y"
DEFAULT_DROP = ("x28", "x61")
REAL_TIME_FORMAT = "%m/%d/%y %H:%M"
EPOCH = "epoch"  # --time-format for seconds since 1970-01-01 UTC
GZIP_MAGIC = b"\x1f\x8b"
# Largest accepted |value|. Sensor values are squared and summed (scaling, reconstruction
# errors over lookback x features), so a value must leave room for its square times a large
# count: (1e150)**2 = 1e300 < 1.8e308 (the float64 maximum), with a factor 1e8 to spare.
MAX_ABS_VALUE = 1e150
SHOW_NAMES = 5  # column names listed in a message before "... (N more)"
SHOW_CHARS = 40  # longest value or name shown in a message
# The UTC offset at the end of an ISO 8601 time: Z, +hh, +hhmm or +hh:mm after a time of day.
OFFSET = re.compile(r"[T ]\d{1,2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<h>\d{2}):?(?P<m>\d{2})?)$")


@dataclass(frozen=True)
class Columns:
    """How a file names its time and label columns and writes its times.

    ``time_format``: a strftime pattern (``%d.%m.%Y %H:%M:%S``) or ``epoch`` (seconds since
    1970 UTC), for times that the default reading gets wrong or cannot read; None reads ISO 8601
    (``YYYY-MM-DD HH:MM:SS`` too), the real file's ``M/D/YY H:MM``, or epoch seconds."""

    time: str = TIME
    label: str = LABEL
    time_format: str | None = None

    def __post_init__(self):
        if not self.time or not self.label:
            raise UserError("--time-column and --label-column must name a column")
        if self.time == self.label:
            raise UserError(f"--time-column and --label-column are both {self.time!r}; name two columns")
        if self.time_format is not None and self.time_format != EPOCH and "%" not in self.time_format:
            raise UserError(f"--time-format {self.time_format!r}: expected a strftime pattern such as "
                            f"'%d.%m.%Y %H:%M:%S', or {EPOCH!r} for seconds since 1970")


def _show(value, limit: int = SHOW_CHARS) -> str:
    """A value for a message: text quoted, numbers plain (never a NumPy repr), long text cut."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _names(names, n: int = SHOW_NAMES) -> str:
    """Column names for a message: the first ``n`` (each cut to SHOW_CHARS), then how many more."""
    names = [str(name) for name in names]
    shown = ", ".join(name if len(name) <= SHOW_CHARS else name[:SHOW_CHARS] + "..." for name in names[:n])
    return shown + (f", ... ({len(names) - n} more)" if len(names) > n else "")


def _compression(path: Path) -> str | None:
    with open(path, "rb") as handle:
        return "gzip" if handle.read(2) == GZIP_MAGIC else None


class Buffer(io.BytesIO):
    """A whole input held in memory (standard input), named in messages by ``name``."""

    def __init__(self, data: bytes, name: str = "stdin"):
        super().__init__(data)
        self.name = name

    def __str__(self) -> str:
        return self.name

    def reopened(self) -> io.BytesIO:
        return io.BytesIO(self.getvalue())


PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_EXTRA = "pip install 'lstm-rare-event[parquet]'"
# --sep names a shell user can type for a tab.
TAB_NAMES = ("tab", "\\t", "\t")


def separator(sep: str) -> str:
    """``--sep``: one character; 'tab' or '\\t' for a tab."""
    sep = "\t" if sep in TAB_NAMES else sep
    if not isinstance(sep, str) or len(sep) != 1 or sep in "\r\n\"":
        raise UserError(f"--sep {sep!r}: expected one character such as ',', ';' or tab")
    return sep


def _decimal(decimal: str) -> str:
    if decimal not in (".", ","):
        raise UserError(f"--decimal {decimal!r}: expected '.' or ','")
    return decimal


def is_parquet(path) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def read_parquet(path, chunk_rows: int | None = None, columns: Columns = Columns()):
    """A Parquet file (a historian export) as read_csv's raw table, or an iterator of chunks:
    times as ISO 8601 text (with the UTC offset for zoned timestamps), numbers as they are."""
    path = Path(path)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{path}: reading Parquet needs pyarrow, the optional extra [parquet]: {PARQUET_EXTRA}") \
            from None
    try:
        handle = pq.ParquetFile(path)
        check_header(handle.schema_arrow.names, path)
        if chunk_rows is None:
            return _parquet_frame(handle.read().to_pandas(), columns.time)
        return _Chunks(_parquet_frame(batch.to_pandas(), columns.time)
                       for batch in handle.iter_batches(batch_size=chunk_rows))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors vary by version
        raise UserError(f"{path}: cannot be read as Parquet ({type(exc).__name__}: {exc})") from None


class _Chunks:
    """An iterator of DataFrames usable as pandas' chunked reader is (``with reader:``, ``next``)."""

    def __init__(self, frames):
        self._frames = iter(frames)

    def __iter__(self):
        return self

    def __next__(self) -> pd.DataFrame:
        return next(self._frames)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()


def _parquet_frame(frame: pd.DataFrame, time: str) -> pd.DataFrame:
    import pandas as pd

    if time in frame.columns and pd.api.types.is_datetime64_any_dtype(frame[time]):
        times = frame[time]
        text = times.map(lambda t: t.isoformat()) if getattr(times.dt, "tz", None) is not None \
            else times.dt.strftime("%Y-%m-%dT%H:%M:%S")
        frame = frame.assign(**{time: text.astype(str)})
    elif time in frame.columns:
        frame = frame.assign(**{time: frame[time].astype(str)})
    return frame


def _first_lines(path: Path, n: int = 2) -> list[str]:
    opener = gzip.open if _compression(path) == "gzip" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:
            return [handle.readline().rstrip("\r\n") for _ in range(n)]
    except (OSError, EOFError, zlib.error):
        return []


def _format_hint(path: Path, sep: str, decimal: str) -> str | None:
    """The --sep (and --decimal) that would read ``path``, when its first lines say so."""
    lines = _first_lines(path)
    header = lines[0] if lines else ""
    data = lines[1] if len(lines) > 1 else ""
    for char, name, option in ((";", "semicolon", "--sep ';'"), ("\t", "tab", "--sep tab"), ("|", "pipe", "--sep '|'"),
                               (",", "comma", "--sep ','")):
        if char != sep and char in header and sep not in header:
            comma = decimal != "," and any(DECIMAL_COMMA.match(field.strip()) for field in data.split(char))
            return f"looks {name}-separated; try {option}{' --decimal ' + repr(',') if comma else ''}"
    if sep != "," and decimal != "," and any(DECIMAL_COMMA.match(field.strip()) for field in data.split(sep)):
        return "numbers have a decimal comma (like 1,5); try --decimal ','"
    return None


DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


def read_csv(path, chunk_rows: int | None = None, sep: str = ",", decimal: str = ".", columns: Columns = Columns()):
    """The raw table (or an iterator of chunks), strings as read, with readable errors.

    ``sep`` and ``decimal``: historian exports are often tab-separated, or semicolon-separated
    with a decimal comma (``sep=";", decimal=","``). A ``.parquet`` file is read with pyarrow.
    ``path`` may be a :class:`Buffer` (standard input)."""
    import pandas as pd

    if isinstance(path, Buffer):
        compression = "gzip" if path.getvalue()[:2] == GZIP_MAGIC else None
        source = path.reopened
    else:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: file not found")
        if is_parquet(path):
            return read_parquet(path, chunk_rows, columns)
        compression = _compression(path)
        source = lambda: path  # noqa: E731
    sep, decimal = separator(sep), _decimal(decimal)
    if sep == decimal:
        raise UserError(f"--sep and --decimal are both {sep!r}; a decimal comma needs another separator "
                        "(--sep ';' --decimal ',')")
    options = dict(compression=compression, encoding="utf-8-sig", keep_default_na=False,
                   skipinitialspace=True, sep=sep)
    try:
        header = pd.read_csv(source(), header=None, nrows=1, dtype=str, **options).iloc[0].tolist()
        hint = None if isinstance(path, Buffer) else _format_hint(path, sep, decimal)
        if hint and len(header) == 1:
            raise UserError(f"{path}: one column only when read with --sep {sep!r} ({_show(header[0])}); {hint}")
        if hint and hint.startswith("numbers"):
            raise UserError(f"{path}: {hint}")
        raw = pd.read_csv(source(), dtype={columns.time: str}, chunksize=chunk_rows, decimal=decimal, **options)
        check_header(header, path)
        return raw
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty; expected a CSV header line with time, y and sensor columns") from None
    except Exception as exc:
        raise read_error(path, exc) from None


def check_header(names, source) -> None:
    """Refuse a header that names a column twice: pandas would silently rename the second
    ``x5`` to ``x5.1`` (or ``x5.2`` if ``x5.1`` exists), so read the names as written."""
    first = {}
    for i, name in enumerate(names):
        name = str(name)
        if name == "":  # pandas names empty headers "Unnamed: i", which never clash
            continue
        if name in first:
            raise UserError(
                f"{source}: column {_show(name)} appears twice in the header (columns {first[name] + 1} and "
                f"{i + 1}); rename or remove one"
            )
        first[name] = i


def read_error(path: Path, exc: Exception) -> UserError | KeyboardInterrupt:
    """Translate what pandas, gzip and zlib raise for a broken file into one line. A Ctrl-C
    that pandas' C parser reported as a failed read stays an interrupt."""
    import pandas as pd

    if isinstance(exc, pd.errors.ParserError) and "Calling read(nbytes) on source failed" in str(exc):
        # The read callback raised an exception without a value, which the parser dropped: in
        # CPython 3.11, the KeyboardInterrupt of the default SIGINT handler.
        return KeyboardInterrupt()
    if isinstance(exc, (EOFError, gzip.BadGzipFile, zlib.error)):
        return UserError(f"{path}: the gzip data is truncated or corrupt ({exc})")
    if isinstance(exc, UnicodeDecodeError):
        return UserError(f"{path}: not a UTF-8 text CSV file (byte {exc.start} cannot be decoded)")
    if isinstance(exc, pd.errors.ParserError):
        return UserError(f"{path}: not a valid CSV file ({str(exc).strip().splitlines()[-1]})")
    if isinstance(exc, UserError):
        return exc
    return UserError(f"{path}: cannot be read as CSV ({type(exc).__name__}: {exc})")


def select_features(columns, source, features=None, drop=DEFAULT_DROP, names: Columns = Columns()) -> list[str]:
    """The sensor columns to use: ``features`` if given, else all but time, label and ``drop``."""
    columns = list(columns)
    present = set(columns)
    time, label = names.time, names.label
    if time not in present:
        option = "" if time != TIME else "; name it with --time-column"
        raise UserError(f"{source}: no '{time}' column (found: {_names(columns)}){option}")
    if features:
        features = list(features)
        for name in features:
            if name in (time, label):
                what = "the time column" if name == time else "the label column (0 = normal, 1 = break)"
                raise UserError(f"{source}: column {_show(name)} is {what} and cannot be a feature; "
                                "leave it out of --features")
        seen = set()
        for name in features:
            if name in seen:
                raise UserError(f"{source}: column {_show(name)} is named twice in the feature list (--features)")
            seen.add(name)
        missing = [name for name in features if name not in present]
        if missing:
            raise UserError(f"{source}: missing column(s) {_names(missing)} (expected by the feature list)")
        return features
    drop = set(drop)
    chosen = [name for name in columns if name not in (time, label) and name not in drop]
    if not chosen:
        raise UserError(f"{source}: no sensor columns besides {time} and {label}")
    return chosen


def parse_times(text: pd.Series, source, first_row: int = 1, columns: Columns = Columns()) -> np.ndarray:
    """``datetime64[s]`` from the real file's ``M/D/YY H:MM``, from ISO 8601 (times with a
    UTC offset are converted to UTC) or from epoch seconds."""
    return parse_times_with_offsets(text, source, first_row, columns=columns)[0]


def parse_times_with_offsets(text: pd.Series, source, first_row: int = 1, earlier_offsets: bool | None = None,
                             columns: Columns = Columns()):
    """``(time, utc_offset)``: ``datetime64[s]`` times (in UTC where the text has an offset) and
    the offset of every row in seconds (int32), or None when no time has one.

    The offset may change from row to row (daylight saving, ``Z`` next to ``+00:00``); then the
    offsets are read from the text with a regular expression, the times stay vectorized.
    Times with and without an offset in one file are refused. ``earlier_offsets`` says whether
    the rows of earlier chunks had offsets (None: no earlier rows). ``columns.time_format``,
    when given, is the only format tried.
    """
    text = text.astype(str).str.strip()
    if columns.time_format is not None:
        parsed, offsets = _formatted_times(text, columns.time_format, source), None
    else:
        parsed, offsets = _guessed_times(text, source, first_row, earlier_offsets, columns)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        row = bad[0]
        expected = "M/D/YY H:MM like 5/1/99 0:00, ISO 8601, or epoch seconds" if columns.time_format is None \
            else f"--time-format {columns.time_format!r}"
        raise UserError(
            f"{source}: row {first_row + row}, column '{columns.time}': cannot read time {_show(text.iloc[row])} "
            f"(expected {expected})"
        )
    if getattr(parsed.dt, "tz", None) is not None:
        if offsets is None:  # one offset for every row
            offset = parsed.iloc[0].utcoffset()
            offsets = np.full(len(parsed), int(offset.total_seconds()), dtype=np.int32)
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    has_offsets = offsets is not None
    if earlier_offsets is not None and len(text) and has_offsets != earlier_offsets:
        _refuse_mixed(text, source, first_row, 0, has_offsets, columns.time)
    return parsed.to_numpy().astype("datetime64[s]"), offsets


def _epoch(text: pd.Series) -> pd.Series:
    import pandas as pd

    seconds = pd.to_numeric(text, errors="coerce")
    # Beyond pandas' nanosecond range (year 2262) is not a time anyone's sensors wrote.
    seconds = seconds.where(seconds.abs() < 9e9)
    return pd.to_datetime(seconds, unit="s", errors="coerce")


def _formatted_times(text: pd.Series, time_format: str, source) -> pd.Series:
    import pandas as pd

    if time_format == EPOCH:
        return _epoch(text)
    try:
        return pd.to_datetime(text, format=time_format, errors="coerce")
    except ValueError as exc:  # a pattern pandas refuses, or %z with offsets that differ by row
        raise UserError(f"{source}: cannot read the times with --time-format {time_format!r} ({exc})") from None


def _guessed_times(text: pd.Series, source, first_row: int, earlier_offsets, columns: Columns):
    """Times read as ISO 8601 or M/D/YY H:MM, whichever reads more rows, or else as epoch seconds."""
    import pandas as pd

    parsed = offsets = None
    if len(text) and "/" not in text.iloc[0]:
        # ISO 8601 first when the first time is not M/D/YY: trying the real file's format on
        # every row first costs a strptime per row. No text reads in both formats, so when ISO
        # reads every row, the answer is the one the order below would give.
        with contextlib.suppress(ValueError):  # mixed offsets: read below
            iso = pd.to_datetime(text, format="ISO8601", errors="coerce")
            parsed = iso if iso.notna().all() else None
    if parsed is None:
        parsed = pd.to_datetime(text, format=REAL_TIME_FORMAT, errors="coerce")
    if parsed.isna().any():
        try:
            iso = pd.to_datetime(text, format="ISO8601", errors="coerce")
        except ValueError:  # "Mixed timezones": offsets differ, or some times have none
            iso, offsets = _mixed_offsets(text, source, first_row, earlier_offsets, columns.time)
        if iso.notna().sum() > parsed.notna().sum():
            parsed = iso
        else:
            offsets = None
    if parsed.isna().all() and len(text):
        # Neither format read a single time: whole numbers of 9 or more digits are epoch seconds
        # (8 digits read as ISO 8601's YYYYMMDD; --time-format epoch for those).
        parsed, offsets = _epoch(text), None
    return parsed, offsets


def _mixed_offsets(text: pd.Series, source, first_row: int, earlier_offsets: bool | None, time: str):
    """Times in UTC and offsets in seconds for ISO 8601 text whose offsets differ by row."""
    import pandas as pd

    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    # The offset is read once per distinct text after the date (YYYY-MM-DD or YYYYMMDD):
    # a few thousand times of day, not a regular expression per row.
    codes, tails = pd.factorize(text.str[8:])
    found = [OFFSET.search(tail) for tail in tails]
    has = np.array([match is not None for match in found], dtype=bool)[codes]
    seconds = np.array([_offset_seconds(match) for match in found], dtype=np.int32)
    expected = has[0] if earlier_offsets is None else earlier_offsets
    differ = np.flatnonzero((has != expected) & parsed.notna().to_numpy())
    unreadable = np.flatnonzero(parsed.isna().to_numpy())
    if differ.size and not (unreadable.size and unreadable[0] < differ[0]):
        _refuse_mixed(text, source, first_row, differ[0], bool(has[differ[0]]), time)
    offsets = seconds[codes]
    return parsed, offsets


def _offset_seconds(match) -> int:
    if match is None or match["z"]:
        return 0
    seconds = int(match["h"]) * 3600 + int(match["m"] or 0) * 60
    return -seconds if match["sign"] == "-" else seconds


def _refuse_mixed(text: pd.Series, source, first_row: int, row: int, has_offset: bool, time: str):
    if has_offset:
        what = "has a UTC offset but earlier rows do not"
    else:
        what = "has no UTC offset but earlier rows do"
    raise UserError(
        f"{source}: row {first_row + row}, column '{time}': time {_show(text.iloc[row])} {what}; "
        "give every time an offset (like +01:00 or Z) or none"
    )


def parse_numbers(text: pd.Series, column: str, source, first_row: int = 1) -> np.ndarray:
    """Floats from a column that pandas parsed already, or from text where it could not.

    Refused: text that is not a number, inf, nan, and |x| > MAX_ABS_VALUE."""
    import pandas as pd

    if not _is_number(text):
        text = text.astype(str)
    values = _floats(text)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = bad[0]
        where = f"{source}: row {first_row + row}, column {_show(column)}"
        if pd.isna(values).all() and not _number_words(text).any():
            raise UserError(
                f"{where}: {_show(text.iloc[row])} is not a number, and no row of this column is (a text "
                f"column?); leave it out by adding it to --drop (e.g. --drop {','.join([*DEFAULT_DROP, str(column)])}) "
                "or list the sensors with --features"
            )
        raise UserError(f"{where}: {_show(text.iloc[row])} is not a finite number")
    big = np.flatnonzero(np.abs(values) > MAX_ABS_VALUE)
    if big.size:
        row = big[0]
        raise UserError(
            f"{source}: row {first_row + row}, column {_show(column)}: value {values[row]:g} is too large "
            f"(|x| > {MAX_ABS_VALUE:g}; later sums of squares would overflow)"
        )
    return values


def _is_number(column: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _floats(column: pd.Series) -> np.ndarray:
    """A column as floats: as pandas read it when numbers, else from its text (NaN where none)."""
    import pandas as pd

    if _is_number(column):
        return column.to_numpy(dtype=float)
    return pd.to_numeric(column.astype(str).str.strip(), errors="coerce").to_numpy(dtype=float)


def _sensor_values(raw: pd.DataFrame, features, source, first_row: int) -> np.ndarray:
    """The sensor columns as floats, checked at once: those pandas read as NumPy numbers in one
    conversion, the others from their text; the first column (in feature order) with a value
    that is not finite or too large is parse_numbers' to tell, as when each is parsed alone."""
    dtypes = dict(zip(raw.columns, raw.dtypes))
    numbers = [j for j, name in enumerate(features) if dtypes[name].kind in "iuf"]
    values = np.empty((len(raw), len(features)), dtype=float)
    if numbers:
        values[:, numbers] = raw[[features[j] for j in numbers]].to_numpy(dtype=float)
    for j in sorted(set(range(len(features))) - set(numbers)):
        values[:, j] = _floats(raw[features[j]])
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(values) <= MAX_ABS_VALUE)  # NaN and inf too
    if bad.any():
        name = features[int(np.flatnonzero(bad.any(axis=0))[0])]
        parse_numbers(raw[name], name, source, first_row)  # raises its message
    return values


def _number_words(text: pd.Series) -> np.ndarray:
    """Which entries spell a number that is not finite (nan, inf, ...): those are numbers too."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(text):
        return np.ones(len(text), dtype=bool)
    words = text.astype(str).str.strip().str.lower().str.lstrip("+-")
    return words.isin(["nan", "inf", "infinity"]).to_numpy()


def parse_labels(text: pd.Series, source, first_row: int = 1, column: str = LABEL) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_bool_dtype(text) and not text.isna().any():
        return text.to_numpy(dtype=np.int8)  # Parquet's booleans: True is 1
    values = parse_numbers(text, column, source, first_row)
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        row = bad[0]
        raise UserError(
            f"{source}: row {first_row + row}, column '{column}': label {_show(text.iloc[row])}; expected 0 or 1"
        )
    return values.astype(np.int8)


class Table:
    """A checked table: times, optional labels and sensor values, in file order.

    ``time`` is ``datetime64[s]``, in UTC when the file's times carry a UTC offset;
    ``utc_offset`` is then each row's offset in seconds (int32), so times can be written
    back as the user gave them; it is None when the times have no offset."""

    def __init__(self, time: np.ndarray, values: np.ndarray, features: list[str], y: np.ndarray | None = None,
                 utc_offset: np.ndarray | None = None):
        self.time = time
        self.values = values
        self.features = features
        self.y = y
        self.utc_offset = utc_offset

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def concat(cls, first: "Table", second: "Table") -> "Table":
        join = lambda a, b: None if a is None or b is None else np.concatenate([a, b])  # noqa: E731
        return cls(np.concatenate([first.time, second.time]), np.concatenate([first.values, second.values]),
                   first.features, join(first.y, second.y), join(first.utc_offset, second.utc_offset))

    def subset(self, index) -> "Table":
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return Table(self.time[index], self.values[index], self.features, pick(self.y), pick(self.utc_offset))


def check_table(raw: pd.DataFrame, source, features, labels: str = "required", first_row: int = 1,
                previous_time=None, earlier_offsets: bool | None = None, names: Columns = Columns()) -> Table:
    """Parse and check one raw chunk. ``first_row`` is the 1-based data row of its first line,
    so messages point at the row in the file; ``previous_time`` continues the ordering check
    across chunks, and ``earlier_offsets`` (whether the earlier chunks' times had a UTC offset,
    i.e. ``table.utc_offset is not None``) the check that all times have one or none.
    ``labels`` is "required", "optional" or "ignore"; ``names`` names the time and label columns."""
    columns = set(raw.columns)
    missing = [name for name in [names.time, *features] if name not in columns]
    if missing:
        raise UserError(f"{source}: missing column(s) {_names(missing)}")
    if labels == "required" and names.label not in columns:
        raise UserError(f"{source}: no '{names.label}' label column (0 = normal, 1 = break); name it with --label-column")
    time, utc_offset = parse_times_with_offsets(raw[names.time], source, first_row, earlier_offsets, names)
    check_increasing(time, source, first_row, previous_time, text=raw[names.time], column=names.time)
    y = parse_labels(raw[names.label], source, first_row, names.label) \
        if labels != "ignore" and names.label in columns else None
    return Table(time, _sensor_values(raw, features, source, first_row), list(features), y, utc_offset)


def check_increasing(time: np.ndarray, source, first_row: int = 1, previous_time=None, text=None,
                     column: str = TIME) -> None:
    """Times must strictly increase; ``text`` (the time column as read: a Series or a list) is
    shown when given."""
    series = time if previous_time is None else np.concatenate([[previous_time], time])
    offset = 0 if previous_time is None else 1
    bad = np.flatnonzero(np.diff(series) <= np.timedelta64(0, "s"))
    if bad.size:
        row = bad[0] + 1 - offset

        def shown(i):  # i indexes series
            if text is not None and i - offset >= 0:
                return _show(str(list(text)[i - offset]).strip())
            return _show(str(series[i]))

        raise UserError(
            f"{source}: row {first_row + row}, column '{column}': {shown(bad[0] + 1)} does not come after "
            f"{shown(bad[0])}; times must be strictly increasing"
        )


CHUNK_ROWS = 50_000  # rows parsed at a time: bounds memory whatever the file's length


def read_chunks(path, chunk_rows: int = CHUNK_ROWS, sep: str = ",", decimal: str = ".", columns: Columns = Columns()):
    """The raw CSV (or Parquet) in chunks of ``chunk_rows`` rows (a header-only file gives one
    empty chunk). ``path`` may be a :class:`Buffer` (standard input)."""
    reader = read_csv(path, chunk_rows, sep=sep, decimal=decimal, columns=columns)
    with reader:
        while True:
            try:
                raw = next(reader)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - every read failure becomes one line
                raise read_error(path, exc) from None
            yield raw


def read_table(path, features=None, drop=DEFAULT_DROP, labels: str = "required", sep: str = ",",
               decimal: str = ".", values_to: Path | None = None, columns: Columns = Columns()) -> Table:
    """Read and check a whole sheet-break CSV file (or Parquet file), a chunk at a time.

    ``path`` may also be several files in time order (:class:`~lstm_rare_event.preprocess.inputs.Inputs`),
    read as one table: the sensors are chosen from the first, and the times must go on
    increasing across files (a message names the file and its row).

    With ``values_to``, the sensor values go to that file (the Table's ``values`` is then a
    :class:`RowFile` over it) instead of memory, which holds only times and labels."""
    times, labels_read, offsets, values = [], [], [], []
    chosen, last = None, None
    for source in getattr(path, "sources", (path,)):
        first_row = 1
        for raw in read_chunks(source, CHUNK_ROWS, sep=sep, decimal=decimal, columns=columns):
            if raw.empty:
                continue
            if chosen is None:
                chosen = select_features(raw.columns, source, features, drop, columns)
                if values_to is not None:
                    values = RowFile.create(values_to, len(chosen))
            part = check_table(raw, source, chosen, labels, first_row, previous_time=last,
                               earlier_offsets=None if last is None else bool(offsets), names=columns)
            times.append(part.time)
            labels_read.append(part.y)
            if part.utc_offset is not None:
                offsets.append(part.utc_offset)
            values.append(part.values)
            last, first_row = part.time[-1], first_row + len(raw)
    if chosen is None:
        raise UserError(f"{path}: no data rows, only a header")
    join = lambda parts: None if not parts or parts[0] is None else np.concatenate(parts)  # noqa: E731
    return Table(np.concatenate(times), values if values_to is not None else np.concatenate(values), chosen,
                 join(labels_read), join(offsets))


def sampling_interval(time: np.ndarray) -> np.timedelta64:
    """The cadence: the most common step between rows (2 minutes in the real file)."""
    steps = np.diff(time)
    if steps.size == 0:
        raise UserError("cannot tell the sampling interval from a single row")
    values, counts = np.unique(steps, return_counts=True)
    return values[np.argmax(counts)]

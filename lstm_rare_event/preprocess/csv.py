"""Reading and checking sheet-break CSV files.

The real file (``time, y, x1..x61``) is CRLF, comma-separated, times like ``5/1/99 0:00``.
Files may also be gzip-compressed, LF, start with a UTF-8 BOM, use ISO 8601 times, order
columns differently or carry extra columns. Every problem becomes a one-line
:class:`UserError` naming the file, the column or row, and what was expected.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_rare_event.errors import UserError

TIME = "time"
LABEL = "y"
DEFAULT_DROP = ("x28", "x61")
REAL_TIME_FORMAT = "%m/%d/%y %H:%M"
GZIP_MAGIC = b"\x1f\x8b"


def _compression(path: Path) -> str | None:
    with open(path, "rb") as handle:
        return "gzip" if handle.read(2) == GZIP_MAGIC else None


def read_csv(path, chunk_rows: int | None = None):
    """The raw table (or an iterator of chunks), strings as read, with readable errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return pd.read_csv(
            path,
            compression=_compression(path),
            encoding="utf-8-sig",
            dtype={TIME: str},
            keep_default_na=False,
            chunksize=chunk_rows,
            skipinitialspace=True,
        )
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty; expected a CSV header line with time, y and sensor columns") from None
    except Exception as exc:
        raise read_error(path, exc) from None


def read_error(path: Path, exc: Exception) -> UserError:
    """Translate what pandas, gzip and zlib raise for a broken file into one line."""
    if isinstance(exc, (EOFError, gzip.BadGzipFile, zlib.error)):
        return UserError(f"{path}: the gzip data is truncated or corrupt ({exc})")
    if isinstance(exc, UnicodeDecodeError):
        return UserError(f"{path}: not a UTF-8 text CSV file (byte {exc.start} cannot be decoded)")
    if isinstance(exc, pd.errors.ParserError):
        return UserError(f"{path}: not a valid CSV file ({str(exc).strip().splitlines()[-1]})")
    if isinstance(exc, UserError):
        return exc
    return UserError(f"{path}: cannot be read as CSV ({type(exc).__name__}: {exc})")


def select_features(columns, source, features=None, drop=DEFAULT_DROP) -> list[str]:
    """The sensor columns to use: ``features`` if given, else all but time, y and ``drop``."""
    columns = list(columns)
    if TIME not in columns:
        raise UserError(f"{source}: no '{TIME}' column (found: {_preview(columns)})")
    if features:
        missing = [name for name in features if name not in columns]
        if missing:
            raise UserError(f"{source}: missing column(s) {', '.join(missing)} (expected by the feature list)")
        return list(features)
    chosen = [name for name in columns if name not in (TIME, LABEL) and name not in set(drop)]
    if not chosen:
        raise UserError(f"{source}: no sensor columns besides time and y")
    return chosen


def _preview(columns, n=8) -> str:
    shown = ", ".join(columns[:n])
    return shown + (", ..." if len(columns) > n else "")


def parse_times(text: pd.Series, source, first_row: int = 1) -> np.ndarray:
    """``datetime64[s]`` from the real file's ``M/D/YY H:MM`` or from ISO 8601."""
    text = text.str.strip()
    parsed = pd.to_datetime(text, format=REAL_TIME_FORMAT, errors="coerce")
    if parsed.isna().any():
        iso = pd.to_datetime(text, format="ISO8601", errors="coerce")
        if iso.notna().sum() > parsed.notna().sum():
            parsed = iso
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        row = bad[0]
        raise UserError(
            f"{source}: row {first_row + row}, column '{TIME}': cannot read time {text.iloc[row]!r} "
            "(expected M/D/YY H:MM like 5/1/99 0:00, or ISO 8601)"
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy().astype("datetime64[s]")


def parse_numbers(text: pd.Series, column: str, source, first_row: int = 1) -> np.ndarray:
    """Floats from a column that pandas parsed already, or from text where it could not."""
    if pd.api.types.is_numeric_dtype(text) and not pd.api.types.is_bool_dtype(text):
        values = text.to_numpy(dtype=float)
    else:
        text = text.astype(str)
        values = pd.to_numeric(text.str.strip(), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = bad[0]
        raise UserError(
            f"{source}: row {first_row + row}, column '{column}': {text.iloc[row]!r} is not a finite number"
        )
    return values


def parse_labels(text: pd.Series, source, first_row: int = 1) -> np.ndarray:
    values = parse_numbers(text, LABEL, source, first_row)
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        row = bad[0]
        raise UserError(f"{source}: row {first_row + row}, column '{LABEL}': label {text.iloc[row]!r}; expected 0 or 1")
    return values.astype(np.int8)


class Table:
    """A checked table: times, optional labels and sensor values, in file order."""

    def __init__(self, time: np.ndarray, values: np.ndarray, features: list[str], y: np.ndarray | None = None):
        self.time = time
        self.values = values
        self.features = features
        self.y = y

    def __len__(self) -> int:
        return len(self.time)


def check_table(raw: pd.DataFrame, source, features, labels: str = "required", first_row: int = 1,
                previous_time=None) -> Table:
    """Parse and check one raw chunk. ``first_row`` is the 1-based data row of its first line,
    so messages point at the row in the file; ``previous_time`` continues the ordering check
    across chunks. ``labels`` is "required", "optional" or "ignore"."""
    missing = [name for name in [TIME, *features] if name not in raw.columns]
    if missing:
        raise UserError(f"{source}: missing column(s) {', '.join(missing)}")
    if labels == "required" and LABEL not in raw.columns:
        raise UserError(f"{source}: no '{LABEL}' label column (0 = normal, 1 = break)")
    time = parse_times(raw[TIME], source, first_row)
    check_increasing(time, source, first_row, previous_time)
    y = parse_labels(raw[LABEL], source, first_row) if labels != "ignore" and LABEL in raw.columns else None
    values = np.empty((len(raw), len(features)), dtype=float)
    for j, name in enumerate(features):
        values[:, j] = parse_numbers(raw[name], name, source, first_row)
    return Table(time, values, list(features), y)


def check_increasing(time: np.ndarray, source, first_row: int = 1, previous_time=None) -> None:
    series = time if previous_time is None else np.concatenate([[previous_time], time])
    offset = 0 if previous_time is None else 1
    bad = np.flatnonzero(np.diff(series) <= np.timedelta64(0, "s"))
    if bad.size:
        row = bad[0] + 1 - offset
        raise UserError(
            f"{source}: row {first_row + row}, column '{TIME}': {series[bad[0] + 1]} does not come after "
            f"{series[bad[0]]}; times must be strictly increasing"
        )


def read_table(path, features=None, drop=DEFAULT_DROP, labels: str = "required") -> Table:
    """Read and check a whole sheet-break CSV file."""
    raw = read_csv(path)
    if raw.empty:
        raise UserError(f"{path}: no data rows, only a header")
    chosen = select_features(raw.columns, path, features, drop)
    return check_table(raw, path, chosen, labels)


def sampling_interval(time: np.ndarray) -> np.timedelta64:
    """The cadence: the most common step between rows (2 minutes in the real file)."""
    steps = np.diff(time)
    if steps.size == 0:
        raise UserError("cannot tell the sampling interval from a single row")
    values, counts = np.unique(steps, return_counts=True)
    return values[np.argmax(counts)]

"""Small CSV inputs read and checked without pandas: the new lines of a followed file, the row
or two of a cron call.

pandas' reader costs about ten milliseconds a call whatever the size, and parsing its ~60
columns one by one as much again: more than scoring a row. A small input whose every cell is
written plainly is split here with ``str.split`` (the csv module for a line with quoted
fields) and converted with Python's ``float`` and the calendar, giving the values, times and
messages that :func:`.csv.read_csv` and :func:`.csv.check_table` give. Anything else is left to
them (:meth:`TextTable.check` returns None, and the caller reads the input with pandas), so
that their errors stay theirs: a gzip or Parquet file, ``--time-format``, a blank line, a line
with another number of fields, a quote inside a field, an empty or repeated column name, a
cell of a sensor or the label that is not a plain number, a time that is not a plain one.

Why the numbers are the same: a number of at most 15 digits is an integer below 2**53 times
or over a power of ten; when that power is at most 10**22 (the point and the exponent, if
any, moved), pandas' C parser (``precise_xstrtod``) makes it with one multiplication or
division of two exact doubles, correctly rounded as ``float`` is. Only
an integer column is converted otherwise (``-0`` is 0 there, -0.0 for ``float``): a negative
zero is left to pandas. Plain times are whole seconds of a date and time of day in the
formats the default reading tries first: ISO 8601 (``T`` or a space, with or without a UTC
offset ``Z`` or ``+hh:mm``) and the real file's ``M/D/YY H:MM``, one format for every row.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import numpy as np

from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.csv import (
    GZIP_MAGIC, Buffer, Columns, Table, _decimal, _format_hint, check_increasing, is_parquet, read_chunks, separator,
)

#: inputs larger than this are read by pandas. A megabyte (some 1,500 rows of the real data)
#: takes this reading 0.1 s and pandas 0.02 s after its import's 0.25 s: a cron call given
#: the whole day's file gains up to there, and a follower's catch-up after a restart loses
#: little before
PLAIN_BYTES = 1 << 20
ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:(Z)|([+-])(\d{2}):(\d{2}))?")
REAL = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{2}) (\d{1,2}):(\d{2})")
# pandas' nanosecond times end in 1677 and 2262; an offset of more than 14 hours is no zone's
YEARS = (1700, 2200)
MAX_OFFSET_HOURS = 14
EPOCH_DAY = dt.date(1970, 1, 1).toordinal()


def _numbers(decimal: str) -> re.Pattern:
    """Cells joined by newlines, each a plain number of at most 15 digits, maybe with an exponent."""
    point = re.escape(decimal)
    return re.compile(rf"(?:-?(?:\d{{1,15}}|(?=[\d{point}]{{3,16}}[eE\n])\d+{point}\d+)(?:[eE][+-]?\d{{1,2}})?\n)*")


def _exact(cells: list[str], decimal: str) -> bool:
    """Whether every number with an exponent is its digits times or over a power of ten of at
    most 10**22, which a double holds exactly (the digits as an integer, the point moved)."""
    for cell in cells:
        if "e" in cell or "E" in cell:
            digits, exponent = cell.lower().split("e")
            places = len(digits.partition(decimal)[2])
            if abs(int(exponent) - places) > 22:
                return False
    return True


NUMBERS = {mark: _numbers(mark) for mark in ".,"}


class TextTable:
    """A small CSV file's header and rows as text, each cell as pandas' reader would give it
    (leading spaces dropped); ``frame()`` reads the same input with pandas."""

    def __init__(self, names: list[str], rows: list[list[str]], source, chunk_rows: int, sep: str, decimal: str,
                 columns: Columns):
        self.columns, self.rows, self.source = names, rows, source
        self._reading = (chunk_rows, sep, decimal, columns)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def empty(self) -> bool:
        return not self.rows

    def frame(self):
        """The input as :func:`.csv.read_chunks` gives it: one chunk, as it holds at most chunk_rows rows."""
        for raw in read_chunks(self.source, *self._reading):
            return raw

    def time_text(self, names: Columns) -> list[str]:
        j = self.columns.index(names.time)
        return [row[j] for row in self.rows]

    def check(self, features: list[str], first_row: int = 1, previous_time=None, earlier_offsets: bool | None = None,
              names: Columns = Columns()) -> tuple[Table, np.ndarray] | None:
        """As :func:`.csv.check_table` with labels optional, and the empty sensor cells (rows,
        features) that it leaves to the caller (their values are 0); None when a cell is not
        plain (see the module docstring): read it with pandas then."""
        where = {name: j for j, name in enumerate(self.columns)}
        if names.time not in where or names.time_format is not None:
            return None
        cells = list(zip(*self.rows))
        text = cells[where[names.time]]
        times = _times(text)
        if times is None:
            return None
        time, offsets = times
        if earlier_offsets is not None and (offsets is not None) != earlier_offsets:
            return None
        check_increasing(time, self.source, first_row, previous_time, text=text, column=names.time)
        decimal = self._reading[2]
        y = None
        if names.label in where:
            labels = cells[where[names.label]]
            ones = {"1", f"1{decimal}0"}  # 1.0: labels written as floats (SKAB's)
            if not set(labels) <= {"0", f"0{decimal}0", *ones}:
                return None
            y = np.array([label in ones for label in labels], dtype=np.int8)
        chosen = [cells[where[name]] for name in features]
        flat = [cell for column in chosen for cell in column]
        empty = np.array([cell == "" for cell in flat], dtype=bool)
        joined = "\n".join("0" if cell == "" else cell for cell in flat) + "\n"
        if decimal not in NUMBERS or not NUMBERS[decimal].fullmatch(joined):
            return None
        if decimal != ".":
            joined = joined.replace(decimal, ".")
        parts = joined.split("\n")[:-1]
        if ("e" in joined or "E" in joined) and not _exact(parts, "."):
            return None
        values = np.fromiter(map(float, parts), dtype=np.float64, count=len(parts))
        if (np.signbit(values) & (values == 0)).any():
            return None
        shape = (len(features), len(self.rows))
        return Table(time, values.reshape(shape).T.copy(), list(features), y, offsets), empty.reshape(shape).T.copy()


def _times(text) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``datetime64[s]`` (UTC where there are offsets) and the offsets in seconds, as
    :func:`.csv.parse_times_with_offsets` reads plain times; None for any other time."""
    pattern = REAL if "/" in text[0] else ISO
    seconds, offsets = [], []
    try:
        for cell in text:
            match = pattern.fullmatch(cell)
            if match is None:
                return None
            if pattern is REAL:
                month, day, year, hour, minute = map(int, match.groups())
                year, second, offset = year + (2000 if year <= 68 else 1900), 0, None
            else:
                year, month, day, hour, minute = map(int, match.groups()[:5])
                second = int(match[6] or 0)
                offset = _offset(match)
            if not (YEARS[0] <= year <= YEARS[1] and hour < 24 and minute < 60 and second < 60):
                return None
            days = dt.date(year, month, day).toordinal() - EPOCH_DAY
            seconds.append(days * 86400 + hour * 3600 + minute * 60 + second - (offset or 0))
            offsets.append(offset)
    except ValueError:  # no such day
        return None
    has = {offset is not None for offset in offsets}
    if len(has) > 1:
        return None
    time = np.array(seconds, dtype=np.int64).astype("datetime64[s]")
    return time, (np.array(offsets, dtype=np.int32) if has == {True} else None)


def _offset(match) -> int | None:
    if match[7]:
        return 0
    if match[8] is None:
        return None
    hours, minutes = int(match[9]), int(match[10])
    if hours > MAX_OFFSET_HOURS or minutes >= 60:
        raise ValueError("no such offset")
    return (-1 if match[8] == "-" else 1) * (hours * 3600 + minutes * 60)


def _split(line: str, sep: str, quoted: re.Pattern) -> list[str] | None:
    if '"' not in line:
        return [cell.lstrip(" ") for cell in line.split(sep)]
    if not quoted.fullmatch(line):
        return None
    return next(csv.reader([line], delimiter=sep, skipinitialspace=True))


def read_plain(path, chunk_rows: int, sep: str = ",", decimal: str = ".", columns: Columns = Columns()) \
        -> TextTable | None:
    """A small plain-text CSV input (a file or a :class:`.csv.Buffer`) as a :class:`TextTable`;
    None when pandas must read it (large, compressed, Parquet, an odd line, --time-format)."""
    try:
        sep, decimal = separator(sep), _decimal(decimal)
    except UserError:  # pandas' path says so
        return None
    if sep == decimal or sep == " " or columns.time_format is not None:
        return None
    if isinstance(path, Buffer):
        data = path.getvalue()
    else:
        path = Path(path)
        try:
            if is_parquet(path) or not path.is_file() or path.stat().st_size > PLAIN_BYTES:
                return None
            data = path.read_bytes()
        except OSError:
            return None
        if _format_hint(path, sep, decimal) is not None:
            return None
    if len(data) > PLAIN_BYTES or data[:2] == GZIP_MAGIC:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    lines = text.removesuffix("\n").split("\n")
    lines = [line.removesuffix("\r") for line in lines]
    if "" in lines or len(lines) - 1 > chunk_rows or any("\r" in line for line in lines):
        return None
    s = re.escape(sep)
    field = rf' *(?:"[^"]*"|[^"{s}]*)'
    quoted = re.compile(rf"{field}(?:{s}{field})*")
    names = _split(lines[0], sep, quoted)
    if names is None or "" in names or len(set(names)) < len(names):
        return None
    rows = []
    for line in lines[1:]:
        row = _split(line, sep, quoted)
        if row is None or len(row) != len(names):
            return None
        rows.append(row)
    return TextTable(names, rows, path, chunk_rows, sep, decimal, columns)

"""INPUT as cron has it: several day files, or a glob (``incoming/*.csv``), read as one table in
time order; ``-`` for standard input.

Files are put in the order of their first row's time (not their names: ``day-9`` before
``day-10``), and their rows must go on increasing from one file to the next (an overlap is
exit 2 naming the file and row). A pattern is expanded here too, so a quoted one works and
a cron line does not depend on the shell's globbing. A file with a header and no row yet (a
day file just created) adds nothing.

Reading the last days of many files touches only the files that can hold them
(:meth:`Inputs.last`, :meth:`Inputs.after`): a file is skipped when the next one starts at
or before the first time wanted, so a year of day files costs one line each.
"""

from __future__ import annotations

import glob
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_rare_event.errors import UserError
from lstm_rare_event.files import sha256_file
from lstm_rare_event.preprocess.csv import Buffer, Columns, parse_times_with_offsets, read_chunks

STDIN = "-"
GLOB_CHARS = "*?["


class MissingInput(UserError):
    """An INPUT that is not there: a file not found, or a pattern that matches nothing. A
    stateful score reports it as a data condition instead of failing on every call."""


def read_stdin() -> Buffer:
    stream = sys.stdin
    return Buffer(stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode())


@dataclass(frozen=True)
class Inputs:
    """Input files in time order (or standard input, a :class:`Buffer`), each with its first
    row's time (None: no data row, or a single source, which needs no order)."""

    sources: tuple
    first_times: tuple
    given: str  # the arguments as the user wrote them, for messages

    def __str__(self) -> str:
        return str(self.sources[0]) if len(self.sources) == 1 else f"{self.given} ({len(self.sources)} files)"

    def __len__(self) -> int:
        return len(self.sources)

    def sha256(self) -> str:
        """One file's own hash; for several, the hash of their names and hashes (a changed,
        added or removed file changes it)."""
        def digest(source) -> str:
            return hashlib.sha256(source.getvalue()).hexdigest() if isinstance(source, Buffer) else sha256_file(source)

        if len(self.sources) == 1:
            return digest(self.sources[0])
        listing = "".join(f"{digest(s)}  {s}\n" for s in self.sources)
        return hashlib.sha256(listing.encode()).hexdigest()

    def _keep_from(self, start: int) -> "Inputs":
        return Inputs(self.sources[start:], self.first_times[start:], self.given)

    def after(self, time) -> "Inputs":
        """Without the files whose every row is at or before ``time`` (the next file starts at
        or before it): what a stateful score has seen already."""
        if time is None:
            return self
        start = 0
        for i in range(1, len(self.sources)):
            first = self.first_times[i]
            if first is not None and first <= time:
                start = i
        return self._keep_from(start)

    def last(self, span, sep: str = ",", decimal: str = ".", columns: Columns = Columns()) -> "Inputs":
        """The files that can hold the rows within the duration ``span`` of the last row (a
        row count keeps every file: the rows are counted when read)."""
        if not isinstance(span, np.timedelta64) or len(self.sources) < 2:
            return self
        with_rows = [i for i, t in enumerate(self.first_times) if t is not None]
        if not with_rows:
            return self
        end = last_time(self.sources[with_rows[-1]], sep, decimal, columns)
        # Rows kept are those after end - span; a file whose successor starts at or before that
        # time holds none of them.
        return self.after(end - span)


def _times_of(raw, source, columns: Columns) -> np.ndarray:
    if columns.time not in raw.columns:
        raise UserError(f"{source}: missing column(s) {columns.time}")
    return parse_times_with_offsets(raw[columns.time], source, columns=columns)[0]


def first_time(source, sep: str = ",", decimal: str = ".", columns: Columns = Columns()):
    """The time of the first data row (UTC where the file has offsets), None for a header only."""
    for raw in read_chunks(source, 1, sep, decimal, columns):
        return _times_of(raw, source, columns)[0] if len(raw) else None
    return None


def last_time(source, sep: str = ",", decimal: str = ".", columns: Columns = Columns()):
    """The time of the last data row (the file is read through, a chunk at a time)."""
    last = None
    for raw in read_chunks(source, sep=sep, decimal=decimal, columns=columns):
        if len(raw):
            last = raw.iloc[-1:]
    return None if last is None else _times_of(last, source, columns)[0]


def _paths(argument: str) -> list[Path]:
    """The files of one INPUT argument: itself, or a pattern's matches in name order."""
    if any(c in argument for c in GLOB_CHARS) and not Path(argument).exists():
        matches = sorted(glob.glob(argument))
        if not matches:
            raise MissingInput(f"{argument}: no file matches")
        return [Path(m) for m in matches if Path(m).is_file()]
    if Path(argument).is_dir():
        raise UserError(f"{argument}: a folder; give its files, or a pattern such as {Path(argument) / '*.csv'}")
    if not Path(argument).is_file():
        raise MissingInput(f"{argument}: file not found")
    return [Path(argument)]


def expand(arguments, sep: str = ",", decimal: str = ".", columns: Columns = Columns(),
           stdin: bool = True, missing: list[str] | None = None) -> Inputs | None:
    """INPUT arguments as :class:`Inputs`: patterns expanded, files in time order.

    Raises :class:`MissingInput` for a file not found or a pattern that matches nothing; with a
    ``missing`` list, appends its one-line message there instead and goes on with the others
    (None when none is left)."""
    arguments = [str(a) for a in arguments]
    if not arguments:
        raise UserError("no INPUT given")
    given = " ".join(arguments)
    if STDIN in arguments:
        if not stdin:
            raise UserError("- (standard input) is not an INPUT here; give files")
        if len(arguments) > 1:
            raise UserError("- (standard input) is the only INPUT when given; standard input has no time order "
                            "among files")
        return Inputs((read_stdin(),), (None,), "stdin")
    paths: list[Path] = []
    for argument in arguments:
        try:
            paths += _paths(argument)
        except MissingInput as exc:
            if missing is None:
                raise
            missing.append(str(exc))
    if not paths:
        return None
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    if len(unique) < len(paths):
        seen, twice = set(), None
        for p in paths:
            twice = twice or (p if p.resolve() in seen else None)
            seen.add(p.resolve())
        raise UserError(f"{twice}: given twice (the arguments and patterns overlap)")
    if len(paths) == 1:  # nothing to order: the file is read once, by its reader
        return Inputs((paths[0],), (None,), given)
    firsts = [first_time(p, sep, decimal, columns) for p in paths]
    never = np.datetime64("9999-12-31T23:59:59", "s")
    order = sorted(range(len(paths)), key=lambda i: (firsts[i] is None, firsts[i] or never, str(paths[i])))
    return Inputs(tuple(paths[i] for i in order), tuple(firsts[i] for i in order), given)

"""What ``score`` writes: the output's columns, its CSV text, and the output file itself (written
whole and atomically in batch, appended to and cut back with ``--state``).

NumPy only (pandas for the odd cell): this runs every two minutes from cron.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lstm_rare_event.alarms.sensors import TOP_SENSORS
from lstm_rare_event.errors import UserError
from lstm_rare_event.run import enclosing_run

# pandas (a quarter of a second to import) is imported by the functions that use it: a
# score call of a few plain rows uses none of them.
if TYPE_CHECKING:
    import pandas as pd

STDIO = "-"


def output_columns(n_features: int, has_contributions: bool = True, held: bool = False,
                   labels: bool = False) -> list[str]:
    """scores.csv's columns: time, score, flag, episode, opened, held (with --missing hold), y
    (with --keep-labels), then the top sensors and their shares for detectors that name sensors."""
    k = min(TOP_SENSORS, n_features) if has_contributions else 0
    return ["time", "score", "flag", "episode", "opened", *(["held"] if held else []), *(["y"] if labels else []),
            *(f"{what}_{i}" for i in range(1, k + 1) for what in ("sensor", "share"))]


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


class Lines:
    """Output lines as columns (name -> array), in scores.csv's order: what the engine hands
    :func:`to_csv` without a DataFrame, whose pandas costs more to import than a cron call's
    scoring; :meth:`frame` is the DataFrame (the Python API's)."""

    def __init__(self, columns: dict):
        self._columns = columns

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self._columns, columns=self.columns)


_QUOTED = (",", '"', "\n", "\r")  # a cell with one of these is quoted by the csv module


def to_csv(lines: Lines) -> str:
    """The rows of ``lines`` as CSV, the bytes ``lines.frame().to_csv(header=False, index=False)`` writes.

    pandas formats each column with ``astype(str)`` (float64: the shortest repr, as Python's
    ``repr`` writes it) and hands the cells to the csv module row by row; joining the same
    strings directly is faster. A column pandas would write otherwise (a missing or infinite number, a cell that
    needs quotes) goes through pandas. Many lines are formatted and joined by pyarrow when it is
    installed (:func:`_arrow_csv`), out of the GIL.
    """
    if len(lines) >= ARROW_LINES:
        text = _arrow_csv(lines)
        if text is not None:
            return text
    cells = []
    for name in lines.columns:
        values = np.asarray(lines[name])
        if values.dtype.kind == "f":
            if not np.isfinite(values).all():
                return _pandas_csv(lines)
        elif values.dtype.kind in "OU":
            listed = values.tolist()
            texts = set(listed)
            if not all(type(text) is str for text in texts) or "" in texts or \
                    any(c in "\0".join(texts) for c in _QUOTED):
                return _pandas_csv(lines)
            cells.append(listed)  # every cell a str already: astype(str) would give the same strings
            continue
        elif values.dtype.kind not in "iub":
            return _pandas_csv(lines)
        if values.dtype == np.float64 or values.dtype.kind in "iub":
            cells.append(list(map(repr if values.dtype.kind == "f" else str, values.tolist())))  # = astype(str)
        else:
            cells.append(values.astype(str).tolist())
    if not len(lines):
        return ""
    return "\n".join(map(",".join, zip(*cells))) + "\n"


#: lines from which pyarrow formats: below, importing it (0.1 s) would cost more than it saves
ARROW_LINES = 4096
# Python's repr writes a float64 in [1e-4, 1e16) positionally; pyarrow writes the same shortest
# round-trip digits, positionally too there but for a whole number (no ".0", or an exponent)
REPR_POSITIONAL = (1e-4, 1e16)


def _arrow_csv(lines: Lines) -> str | None:
    """:func:`to_csv`'s bytes, formatted and joined by pyarrow's compute functions (C++, out of the
    GIL: the next chunk is parsed and scored meanwhile), a few times faster than Python's repr
    and str.join; None when pyarrow is absent or a column is one only the other paths write
    (not float64, int or str; a missing or infinite number; a cell that needs quotes).

    A float64 cell is pyarrow's text where that is repr's: pyarrow writes the shortest digits
    that read back as the same double, the closest to it, as repr does (double-conversion's
    ToShortest, and David Gay's dtoa), and in [1e-4, 1e16) both write them positionally; cells
    outside it, whole numbers and any that pyarrow wrote with an exponent take repr's text."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        return None
    cells = []
    try:
        for name in lines.columns:
            values = np.asarray(lines[name])
            kind = values.dtype.kind
            if kind in "iu":
                cells.append(pc.cast(pa.array(values), pa.string()))
            elif values.dtype == np.float64:
                if not np.isfinite(values).all():
                    return None
                text = pc.cast(pa.array(values), pa.string())
                magnitude = np.abs(values)
                own = (magnitude < REPR_POSITIONAL[0]) | (magnitude >= REPR_POSITIONAL[1]) | (values == np.round(values))
                own |= ~pc.match_substring(text, ".").to_numpy(zero_copy_only=False)
                own |= pc.match_substring(text, "e").to_numpy(zero_copy_only=False)
                if own.any():
                    text = pc.replace_with_mask(text, pa.array(own), pa.array(list(map(repr, values[own].tolist())),
                                                                              type=pa.string()))
                cells.append(text)
            elif kind in "OU":
                text = pa.array(values, type=pa.string())  # refuses a cell that is not a str
                if text.null_count or pc.any(pc.equal(pc.binary_length(text), 0)).as_py() or \
                        pc.any(pc.match_substring_regex(text, '[,"\n\r]')).as_py():
                    return None
                cells.append(text)
            else:
                return None
        rows = pc.binary_join_element_wise(pc.binary_join_element_wise(*cells, ","), "", "\n")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowCapacityError):  # e.g. more than 2 GB of text
        return None
    rows = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=len(rows) + 1, offset=rows.offset * 4)
    return rows.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]].decode("utf-8")


def _pandas_csv(lines: Lines) -> str:
    return lines.frame().to_csv(header=False, index=False, lineterminator="\n")


#: what output_name strips from an input's name: Parquet, CSV and compressed CSV
INPUT_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip", ".csv", ".txt", ".tsv", ".parquet", ".pq")


def output_name(input_path) -> str:
    """``DIR/day-3.csv.gz`` -> ``day-3.scores.csv``: the file ``score --out-dir`` writes for it."""
    name = Path(input_path).name
    for _ in range(2):  # one compression suffix, then one format suffix
        for suffix in INPUT_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
    return f"{name}.scores.csv"


def every_row(frame: Lines | None, times: np.ndarray, windowed: np.ndarray, header: str,
              y: np.ndarray | None = None) -> Lines:
    """The output lines of ``frame`` (the scored windows, or None) with a line for each of the
    input rows at ``times`` (formatted), the scored ones at positions ``windowed``; ``y``: those
    rows' labels, for the y column. A row that ends no window (too few rows before it since the
    start or a time gap, or a break row the label shift dropped) has an empty score, flag,
    episode and opened 0, and no sensors, so that a point-wise evaluation can count it as not
    flagged."""
    columns = header.rstrip("\n").split(",")
    n = len(times)
    out = {}
    for name in columns:
        if name == "time":
            out[name] = np.asarray(times, dtype=object)
        elif name == "y":
            out[name] = np.asarray(y, dtype=np.int8)
            continue
        elif name == "score" or name.startswith("share_"):
            out[name] = np.full(n, np.nan)
        elif name.startswith("sensor_"):
            out[name] = np.full(n, "", dtype=object)
        else:
            out[name] = np.zeros(n, dtype=np.int64)
        if frame is not None:
            out[name][windowed] = frame[name]
    return Lines(out)


def check_output(out_path: Path | None, input_path, run_dir, history=None, state=None, plot=None) -> None:
    """The files a call writes (--out, None for stdout; --state; --plot) may be neither a file
    it reads (INPUT, --history) nor inside a run directory."""
    read = {"the input file": input_path, "the --history file": history}
    for option, path in (("--out", out_path), ("--state", state), ("--plot", plot)):
        if path is None:
            continue
        target = Path(path).resolve()
        for what, given in read.items():
            if given is not None and target == Path(given).resolve():
                raise UserError(f"{path}: {option} is {what}; choose another output")
        run = enclosing_run(target)
        if run is not None or target.parent == Path(run_dir).resolve():
            raise UserError(f"{path}: {option} is inside a run directory ({run or run_dir}), whose files only its "
                            "steps write; write it elsewhere")


def open_output(path: Path) -> dict:
    """The record of the output file a stateful call is about to append to, created (empty)
    when new: its path, its length now and its identity (device and inode), so that the next
    call can cut back the file this one appended to and no other."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", newline="") as handle:
            stat = os.fstat(handle.fileno())
    except OSError as exc:
        raise UserError(f"{path}: cannot write the output ({exc.strerror})") from None
    return {"path": str(path.resolve()), "bytes": stat.st_size, "device": stat.st_dev, "inode": stat.st_ino}


def restore_output(record: dict, state_path, out_path: Path | None) -> None:
    """Cut the output file the state records back to the length it recorded (a call killed
    after appending to it and before saving the state); refuse one that is shorter (edited by
    someone else), and cut only the file the state's call appended to: one of another identity
    (a path edited in the state, the file replaced) is refused, never truncated. A state from
    before the identity was recorded may cut only this call's ``out_path`` (None: stdout)."""
    path, size = record.get("path"), record.get("bytes")
    if path == STDIO or size is None:
        return
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"{path}: cannot read the output that {state_path} records ({exc.strerror})") from None
    now = stat.st_size
    if now > size:
        identity = record.get("device"), record.get("inode")
        ours = identity == (stat.st_dev, stat.st_ino) if identity != (None, None) else \
            out_path is not None and Path(path) == out_path.resolve()
        if not ours:
            raise UserError(f"{state_path}: records {path} as its output at {size} bytes, but that file ({now} bytes) is "
                            "not the one it appended to, so it is not cut back; move the state away to start a new one")
        os.truncate(path, size)
    elif 0 < now < size:
        raise UserError(f"{path}: {now} bytes, shorter than the {size} this state wrote; it was edited or replaced "
                        "since the last call; move it away to start a new output file")


def _check_header(path: Path, header: str) -> None:
    with open(path, encoding="utf-8", newline="") as handle:
        first = handle.readline()
    if first != header:
        raise UserError(f"{path}: its header ({first.strip()!r}) is not this call's ({header.strip()!r}); "
                        "write to a new output file (another run, detector, --missing or --keep-labels?)")


def append_frames(path: Path, header: str, frames) -> int:
    """Append the frames to ``path`` (``header`` first when it is new or empty), flushed to
    disk; on an error, cut it back. Returns its new length in bytes."""
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

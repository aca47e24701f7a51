"""Windows: the (N, lookback, features) tensors the model sees, with their labels and times.

A window is ``lookback`` consecutive rows, so materializing every window stores each row
``lookback`` times: 100 million rows of 59 sensors would be 118 GB of float32 windows. The
windows are therefore never stored: :class:`WindowArray` keeps the scaled rows once (in a
run directory, ``rows.npy``, read memory-mapped) and the row each window ends at, and cuts
windows when they are read, a batch at a time.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_rare_event.errors import UserError
from lstm_rare_event.files import load_npz, save_npz

SPLITS = ("train", "valid", "test")
INDEX_FIELDS = ("y", "end_time", "event_time", "segment_start")


class WindowArray:
    """(N, lookback, F) float32 windows, cut on demand from (T, F) ``rows``: window i is
    ``rows[ends[i] - lookback + 1 : ends[i] + 1]``.

    Indexing the first axis gives another WindowArray (no copy of the rows);
    ``X[:, k, :]`` gathers one row per window; ``np.asarray(X)`` materializes every window
    (:meth:`Windows.batches` a bounded number at a time).
    """

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, rows: np.ndarray, ends: np.ndarray, lookback: int):
        self.rows, self.ends, self.lookback = rows, np.asarray(ends, dtype=np.int64), int(lookback)

    @classmethod
    def of(cls, X: np.ndarray) -> "WindowArray":
        """Windows given as a (N, lookback, F) array, as rows laid end to end."""
        n, lookback, n_features = X.shape
        return cls(np.ascontiguousarray(X, dtype=np.float32).reshape(n * lookback, n_features),
                   np.arange(n, dtype=np.int64) * lookback + lookback - 1, lookback)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.ends), self.lookback, self.rows.shape[1])

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index):
        if not isinstance(index, tuple):
            if np.ndim(index) == 0 and not isinstance(index, slice):
                return stack(self.rows, self.ends[[index]], self.lookback)[0]
            return WindowArray(self.rows, self.ends[index], self.lookback)
        first, *rest = index
        if first is Ellipsis:
            return np.asarray(self)[index]
        if rest and isinstance(rest[0], (int, np.integer)):
            # One row of each window (the detectors' last row): gathered without cutting windows.
            k = int(rest[0]) + (self.lookback if rest[0] < 0 else 0)
            if not 0 <= k < self.lookback:
                raise IndexError(f"row {rest[0]} of windows of {self.lookback} rows")
            picked = np.asarray(self.rows[self.ends[first] - (self.lookback - 1 - k)])
            return picked[(slice(None), *rest[1:])] if rest[1:] else picked
        return np.asarray(self[first])[(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None):
        X = stack(self.rows, self.ends, self.lookback)
        return X if dtype is None else X.astype(dtype, copy=False)



def release(rows: np.ndarray) -> None:
    """Drop the pages of memory-mapped ``rows`` from this process's resident memory. They stay
    in the kernel's page cache, so reading them again costs a page fault, not a disk read;
    without this, every page a pass touched would count against the process until it ends."""
    mapping = getattr(rows, "_mmap", None) if isinstance(rows, np.memmap) else None
    if mapping is not None:
        mapping.madvise(mmap.MADV_DONTNEED)


def window_array(X) -> WindowArray:
    """``X`` as a :class:`WindowArray`; windows given as an array are laid end to end as rows."""
    return X if isinstance(X, WindowArray) else WindowArray.of(np.asarray(X))


@dataclass
class Windows:
    """Windows and what is known about each one.

    X: (N, lookback, n_features) float32, scaled: a :class:`WindowArray`, or an array.
    y: (N,) int8, 1 when the window's last row precedes a break by at most ``shift`` rows.
    end_time: (N,) datetime64[s], the time of each window's last row.
    event_time: (N,) datetime64[s], the time of the break a positive window precedes; NaT
        for normal windows. Windows with the same event_time belong to one break event.
    segment_start: (N,) datetime64[s], when the run of gap-free rows that the window ends in
        began: the last restart after cut-out downtime (the restart detector's input).
    """

    X: WindowArray | np.ndarray
    y: np.ndarray
    end_time: np.ndarray
    event_time: np.ndarray
    segment_start: np.ndarray

    FIELDS = ("X", *INDEX_FIELDS)

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, index) -> "Windows":
        return Windows(*(getattr(self, name)[index] for name in self.FIELDS))

    def batches(self, size: int):
        """Consecutive subsets of at most ``size`` windows: scoring holds one batch of
        windows at a time, never all of them, nor the pages of rows read for earlier batches."""
        for start in range(0, len(self), size):
            yield self.subset(slice(start, start + size))
            if isinstance(self.X, WindowArray):
                release(self.X.rows)

    @classmethod
    def concat(cls, parts: list["Windows"]) -> "Windows":
        return cls(*(np.concatenate([np.asarray(getattr(p, name)) for p in parts]) for name in cls.FIELDS))


def save_splits(rows_path: Path, paths: dict[str, Path], splits: dict[str, Windows]) -> None:
    """Write splits cut from one set of rows: the rows once (``rows.npy``), and per split the
    rows its windows end at with their labels and times. Splits whose windows are not all cut
    from the same rows (built in memory, in tests) are laid end to end into one set."""
    arrays = [window_array(w.X) for w in splits.values()]
    if not all(a.rows is arrays[0].rows for a in arrays):
        offsets = np.cumsum([0] + [len(a.rows) for a in arrays])
        rows = np.concatenate([np.asarray(a.rows) for a in arrays])
        arrays = [WindowArray(rows, a.ends + offset, a.lookback) for a, offset in zip(arrays, offsets)]
    if rows_path is not None:
        np.save(rows_path, np.asarray(arrays[0].rows, dtype=np.float32), allow_pickle=False)
    for (name, windows), X in zip(splits.items(), arrays):
        save_npz(paths[name], ends=X.ends, lookback=np.int64(X.lookback),
                 **{field: getattr(windows, field) for field in INDEX_FIELDS})


def load_rows(path: Path, what: str = "the scaled rows written by prepare") -> np.ndarray:
    """``rows.npy`` memory-mapped: only the pages that windows are cut from are read."""
    try:
        rows = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path}: not {what} ({exc})") from None
    if rows.ndim != 2 or rows.dtype != np.float32:
        raise UserError(f"{path}: not {what} (a {rows.dtype} array of shape {rows.shape})")
    return rows


def load_split(path: Path, rows: np.ndarray) -> Windows:
    """A split's windows over ``rows`` (see :func:`load_rows`)."""
    data = load_npz(path, ("ends", "lookback", *INDEX_FIELDS), "a windows file written by prepare")
    ends, lookback = data.pop("ends"), int(data.pop("lookback"))
    if ends.ndim != 1 or ends.dtype.kind != "i" or not 1 <= lookback <= len(rows) \
            or (len(ends) and (ends.min() < lookback - 1 or ends.max() >= len(rows))) \
            or any(len(v) != len(ends) for v in data.values()):
        raise UserError(f"{path}: its windows do not fit the {len(rows)} rows of rows.npy; re-run prepare")
    return Windows(WindowArray(rows, ends, lookback), **data)


def segments(time: np.ndarray, interval: np.timedelta64) -> np.ndarray:
    """A segment id per row: a new segment starts after every step longer than ``interval``
    (downtime cut out of the data)."""
    starts = np.zeros(len(time), dtype=bool)
    starts[1:] = np.diff(time) > interval
    return np.cumsum(starts)


def segment_starts(time: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """(T,) the time of the first row of each row's segment (segment ids ascend)."""
    return time[np.searchsorted(segment, segment)]


def window_ends(segment: np.ndarray, lookback: int) -> np.ndarray:
    """Rows that end a window of ``lookback`` rows lying inside one segment."""
    index = np.arange(len(segment))
    if len(segment) < lookback:
        return index[:0]
    ok = np.zeros(len(segment), dtype=bool)
    ok[lookback - 1:] = segment[lookback - 1:] == segment[: len(segment) - lookback + 1]
    return index[ok]


def recipe_window_ends(n_rows: int, lookback: int) -> np.ndarray:
    """The recipe's ``temporalize``: windows end at rows lookback+1 .. n-1, ignoring gaps.

    Its loop starts two rows late, so the first two possible windows are missing; kept, so
    that its random split (which depends on the window count) is reproduced exactly.
    """
    return np.arange(lookback + 1, n_rows)


def stack(values: np.ndarray, ends: np.ndarray, lookback: int) -> np.ndarray:
    """(len(ends), lookback, n_features) float32: the ``lookback`` rows ending at each end row."""
    if len(values) < lookback:
        return np.empty((0, lookback, values.shape[1]), dtype=np.float32)
    view = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)  # (T-L+1, F, L)
    return np.ascontiguousarray(view[ends - lookback + 1].transpose(0, 2, 1), dtype=np.float32)

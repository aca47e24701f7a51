"""Windows: the (N, lookback, features) tensors the model sees, with their labels and times."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_rare_event.errors import UserError

SPLITS = ("train", "valid", "test")


@dataclass
class Windows:
    """Windows and what is known about each one.

    X: (N, lookback, n_features) float32, scaled.
    y: (N,) int8, 1 when the window's last row precedes a break by at most ``shift`` rows.
    end_time: (N,) datetime64[s], the time of each window's last row.
    event_time: (N,) datetime64[s], the time of the break a positive window precedes; NaT
        for normal windows. Windows with the same event_time belong to one break event.
    """

    X: np.ndarray
    y: np.ndarray
    end_time: np.ndarray
    event_time: np.ndarray

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, index) -> "Windows":
        return Windows(self.X[index], self.y[index], self.end_time[index], self.event_time[index])

    def save(self, path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, X=self.X, y=self.y, end_time=self.end_time, event_time=self.event_time)


def split_file(split: str) -> str:
    return f"{split}.npz"


def load_split(run_dir, split: str) -> Windows:
    """Read one split (``train``, ``valid`` or ``test``) that ``prepare`` wrote."""
    path = Path(run_dir) / split_file(split)
    if not path.exists():
        raise UserError(f"{path}: not found; run `lstm-rare-event prepare INPUT --out {run_dir}` first")
    try:
        with np.load(path, allow_pickle=False) as data:
            return Windows(data["X"], data["y"], data["end_time"], data["event_time"])
    except (KeyError, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a windows file written by prepare ({exc})") from None


def segments(time: np.ndarray, interval: np.timedelta64, cuts=()) -> np.ndarray:
    """A segment id per row: a new segment starts after every step longer than ``interval``
    (downtime cut out of the data) and at each row index in ``cuts`` (a split boundary)."""
    starts = np.zeros(len(time), dtype=bool)
    starts[1:] = np.diff(time) > interval
    starts[list(cuts)] = True
    starts[:1] = False
    return np.cumsum(starts)


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

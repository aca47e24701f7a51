"""Windows: the (N, lookback, features) tensors the model sees, with their labels and times."""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from lstm_rare_event.files import load_npz, save_npz

SPLITS = ("train", "valid", "test")


@dataclass
class Windows:
    """Windows and what is known about each one.

    X: (N, lookback, n_features) float32, scaled.
    y: (N,) int8, 1 when the window's last row precedes a break by at most ``shift`` rows.
    end_time: (N,) datetime64[s], the time of each window's last row.
    event_time: (N,) datetime64[s], the time of the break a positive window precedes; NaT
        for normal windows. Windows with the same event_time belong to one break event.
    segment_start: (N,) datetime64[s], when the run of gap-free rows that the window ends in
        began: the last restart after cut-out downtime (the restart detector's input).
    """

    X: np.ndarray
    y: np.ndarray
    end_time: np.ndarray
    event_time: np.ndarray
    segment_start: np.ndarray

    FIELDS = ("X", "y", "end_time", "event_time", "segment_start")

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, index) -> "Windows":
        return Windows(*(getattr(self, name)[index] for name in self.FIELDS))

    @classmethod
    def concat(cls, parts: list["Windows"]) -> "Windows":
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in cls.FIELDS))

    def save(self, path) -> None:
        save_npz(path, **{name: getattr(self, name) for name in self.FIELDS})

    @classmethod
    def load(cls, path) -> "Windows":
        return cls(**load_npz(path, cls.FIELDS, "a windows file written by prepare"))


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

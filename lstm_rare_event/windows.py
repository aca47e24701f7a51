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

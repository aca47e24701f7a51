"""What the labels mean: events (shifted ahead, so the model learns what comes before a break)
or intervals (every labelled row is anomalous)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ShiftedLabels:
    """The result of :func:`shift_labels` for a table of T rows.

    keep: (T,) bool, rows that stay (break rows are removed when shift > 0).
    y: labels of the kept rows.
    event_row: for each kept row, the index (in the original table) of the break it
        precedes, or -1.
    """

    keep: np.ndarray
    y: np.ndarray
    event_row: np.ndarray


def shift_labels(y: np.ndarray, shift: int) -> ShiftedLabels:
    """Label the ``shift`` rows before every break 1 and remove the break rows themselves.

    This is the recipe's curve shift: predicting up to ``shift`` rows ahead and never
    learning from the break row (whose sensors already show the torn web). ``shift=0``
    keeps the labels and rows as they are. Rows count as rows, not minutes, as in the recipe.
    """
    y = np.asarray(y).astype(bool)
    n = len(y)
    breaks = np.flatnonzero(y)
    event_row = np.full(n, -1, dtype=np.int64)
    if shift == 0:
        event_row[breaks] = breaks
        return ShiftedLabels(np.ones(n, dtype=bool), y.astype(np.int8), event_row)
    # Farthest first, so a row just before a break belongs to that break, not to a later one.
    for k in range(shift, 0, -1):
        rows = breaks - k
        ok = rows >= 0
        event_row[rows[ok]] = breaks[ok]
    keep = ~y
    return ShiftedLabels(keep, (event_row[keep] >= 0).astype(np.int8), event_row[keep])


def interval_labels(y: np.ndarray) -> ShiftedLabels:
    """Interval labels: every labelled row is anomalous, nothing is dropped or shifted. An
    interval is a run of labelled rows; each of its rows points at the interval's first row, so
    the windows of one interval are one event (bootstrap groups, intervals detected)."""
    y = np.asarray(y).astype(bool)
    n = len(y)
    starts = np.flatnonzero(y & ~np.concatenate([[False], y[:-1]]))
    owner = np.searchsorted(starts, np.arange(n), side="right") - 1
    event_row = np.where(y, starts[np.maximum(owner, 0)] if starts.size else -1, -1).astype(np.int64)
    return ShiftedLabels(np.ones(n, dtype=bool), y.astype(np.int8), event_row)

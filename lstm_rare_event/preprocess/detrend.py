"""Causal per-sensor baseline removal.

Sensor levels move with the paper grade and over days, so a model fitted on the first weeks
sees the last week as anomalous. Subtracting each sensor's median over the previous rows
removes the slow level and keeps the fast change that precedes a break. Only past rows are
used, and never across a time gap (a restart after downtime starts a fresh baseline).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def trailing_median(values: np.ndarray, segment: np.ndarray, window: int) -> np.ndarray:
    """Per column, the median of the up to ``window`` rows before each row in its segment.

    The first row of a segment has no past; its baseline is its own value.
    """
    frame = pd.DataFrame(values)
    groups = frame.groupby(segment, sort=False)
    including_now = groups.rolling(window, min_periods=1).median().reset_index(level=0, drop=True).sort_index()
    past = including_now.groupby(segment, sort=False).shift(1).to_numpy(copy=True)
    first = np.isnan(past).all(axis=1)
    past[first] = values[first]
    return past


def detrend(values: np.ndarray, segment: np.ndarray, window: int) -> np.ndarray:
    """Values minus their trailing median (see :func:`trailing_median`); ``window`` 0 is a no-op."""
    if window <= 0:
        return values
    return values - trailing_median(values, segment, window)

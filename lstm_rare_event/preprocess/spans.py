"""Spans of history as users write them: ``3d``, ``12h``, ``90min``, ``30s``, a number of rows, ``all``."""

from __future__ import annotations

import re

import numpy as np

from lstm_rare_event.errors import UserError

_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "d": 86400, "day": 86400, "days": 86400, "h": 3600, "hour": 3600, "hours": 3600,
          "min": 60, "m": 60, "minutes": 60, "w": 7 * 86400, "week": 7 * 86400, "weeks": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def parse_span(text, option: str, allow_all: bool = False) -> np.timedelta64 | int | None:
    """A duration (``np.timedelta64`` in seconds), a row count (``int``, a bare number), or
    None for ``all`` where allowed."""
    value = str(text).strip().lower()
    if allow_all and value == "all":
        return None
    match = _PATTERN.match(value)
    if not match or (match.group(2) and match.group(2) not in _UNITS):
        expected = "a duration such as 3d, 12h or 90min, a number of rows" + (", or all" if allow_all else "")
        raise UserError(f"{option} {text!r}: expected {expected}")
    number, unit = float(match.group(1)), match.group(2)
    if number <= 0:
        raise UserError(f"{option} {text!r}: must be more than 0")
    if not unit:
        if number != int(number):
            raise UserError(f"{option} {text!r}: a number of rows must be a whole number")
        return int(number)
    return np.timedelta64(int(round(number * _UNITS[unit])), "s")


def as_duration(span, interval: np.timedelta64) -> np.timedelta64 | None:
    """Rows become rows x the cadence; durations stay; None (all) stays None."""
    if span is None or isinstance(span, np.timedelta64):
        return span
    return interval * span

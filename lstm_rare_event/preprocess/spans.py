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


def duration_minutes(text, option: str) -> float:
    """A duration (``30min``, ``2h``) in minutes; a number of rows is refused (no cadence to
    turn it into time)."""
    span = parse_span(text, option)
    if not isinstance(span, np.timedelta64):
        raise UserError(f"{option} {text!r}: expected a duration such as 30min or 2h, not a number of rows")
    return float(span / np.timedelta64(60, "s"))


def as_duration(span, interval: np.timedelta64) -> np.timedelta64 | None:
    """Rows become rows x the cadence; durations stay; None (all) stays None."""
    if span is None or isinstance(span, np.timedelta64):
        return span
    return interval * span


_ROWS = ("rows", "row")
_SECONDS = {"s": 1, "sec": 1, "seconds": 1}
_GAP = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$")


def parse_gap(value, option: str) -> np.timedelta64 | int:
    """A gap between alarms (``--merge``, ``--horizon``): a duration with a unit (``90s``,
    ``30min``, ``2h``), a number of rows (``15rows``), or a bare number of minutes (their meaning
    before units existed); 0 or more. Durations in whole seconds (``np.timedelta64``), rows ``int``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = f"{value!r}"
    text = str(value).strip().lower()
    match = _GAP.match(text)
    unit = match.group(2) if match else None
    if not match or (unit and unit not in _UNITS and unit not in _SECONDS and unit not in _ROWS):
        raise UserError(f"{option} {value!r}: expected a duration such as 90s, 30min or 2h, a number of rows such "
                        "as 15rows, or a number of minutes")
    number = float(match.group(1))
    if unit in _ROWS:
        if number != int(number):
            raise UserError(f"{option} {value!r}: a number of rows must be a whole number")
        return int(number)
    seconds = number * (_SECONDS.get(unit) or _UNITS.get(unit) or 60)
    return np.timedelta64(int(round(seconds)), "s")


def gap_minutes(span: np.timedelta64 | int, interval_minutes: float) -> float:
    """A :func:`parse_gap` value in minutes: rows x the cadence."""
    if isinstance(span, np.timedelta64):
        return float(span / np.timedelta64(60, "s"))
    return span * float(interval_minutes)

"""A synthetic data set with the sheet-break schema, so the pipeline can be shown and tested
without the real (not redistributable) file.

The readings come from a fixed "plant" (sensor scales, factor loadings, grade effects,
culprit sensors), drawn once from ``PLANT_SEED``, so files made with different seeds look
like different days of the same machine: a model trained on one seed can score another.
The seed drives only what happens on those days (noise, grade schedule, breaks, gaps).

In standardized units, each of the 59 numeric sensors is
    a few slow latent factors (AR(1), shared, so sensors are correlated)
  + its own faster AR(1) noise
  + a level that depends on the paper grade (x28)
  + for some sensors, a day-scale oscillation
  + before each break, a growing drift in 3-6 of the ``CULPRITS``,
then mapped to the sensor's own mean and scale. The downtime after each break is cut out
(a 20-300 minute time gap) and the AR(1) processes restart at their baseline.
"""

from __future__ import annotations

import gzip
import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_rare_event.errors import UserError
from lstm_rare_event.files import durable_replace

START = pd.Timestamp("1999-05-01 00:00")
STEP_MINUTES = 2
GAP_MINUTES = (20, 300)
MIN_ROWS = 50
MAX_BREAK_RATE = 0.05
PLANT_SEED = 19990501

# The real file's grade codes and how many rows each has (SOURCE.md).
GRADE_CODES = np.array([96, 82, 118, 139, 84, 112, 93, 51])
GRADE_ROWS = np.array([6574, 4378, 2646, 1807, 1313, 1235, 419, 26])
GRADE_RUN_ROWS = (150, 600)  # 5 to 20 hours at 2 minutes a row

NUMERIC = [f"x{i}" for i in range(1, 61) if i != 28]
COLUMNS = ["time", "y", *[f"x{i}" for i in range(1, 62)]]
CULPRITS = ("x3", "x11", "x19", "x26", "x35", "x44", "x50", "x57")
CULPRITS_PER_BREAK = (3, 6)
DRIFT_ROWS = (2, 6)  # rows of growing drift before a break
# Breaks are at least this many rows apart, so each one's drift starts after the previous restart.
MIN_BREAK_SPACING = 16
FIRST_BREAK_ROW = 10
PRESS_EVENT_RATE = 0.001  # x61: 19 ones in 18,398 real rows
WRITE_CHUNK_ROWS = 50_000  # rows formatted at a time by write_csv (about 30 MB of text)
# Longer files are made of spans of this many rows, one after another: memory stays at one span's.
SPAN_ROWS = 200_000

N_FACTORS = 5
NOISE_PHI = 0.8


@dataclass(frozen=True)
class Plant:
    """What stays the same from seed to seed; arrays are per numeric sensor (59 columns)."""

    mean: np.ndarray
    scale: np.ndarray
    loadings: np.ndarray  # (59, N_FACTORS), rows of unit length
    shared: np.ndarray  # fraction of each sensor's variance that comes from the factors
    factor_phi: np.ndarray  # (N_FACTORS,)
    grade_level: np.ndarray  # (8, 59)
    day_amplitude: np.ndarray  # 0 for sensors without day-scale drift
    day_period_minutes: np.ndarray
    culprit_sign: np.ndarray  # (len(CULPRITS),)
    decimals: np.ndarray  # places written per sensor: about 8 significant digits


def make_plant(seed: int = PLANT_SEED) -> Plant:
    rng = np.random.default_rng(seed)
    n = len(NUMERIC)
    # Real sensor spreads run from about 0.001 to 2000; most are between 0.1 and 100.
    scale = 10.0 ** rng.uniform(-2.0, 2.5, n)
    loadings = rng.normal(size=(n, N_FACTORS)) * (rng.random((n, N_FACTORS)) < 0.4)
    loadings[np.arange(n), np.arange(n) % N_FACTORS] += 1.0  # every sensor shares something
    grade_level = rng.normal(0.0, 1.5, (len(GRADE_CODES), n)) * (rng.random(n) < 0.7)
    drifting = rng.random(n) < 0.2
    return Plant(
        mean=scale * rng.normal(0.0, 0.3, n),
        scale=scale,
        loadings=loadings / np.linalg.norm(loadings, axis=1, keepdims=True),
        shared=rng.uniform(0.5, 0.9, n),
        factor_phi=rng.uniform(0.95, 0.995, N_FACTORS),
        grade_level=grade_level,
        day_amplitude=drifting * rng.uniform(0.5, 1.5, n),
        day_period_minutes=rng.uniform(18, 36, n) * 60,
        culprit_sign=rng.choice([-1.0, 1.0], len(CULPRITS)),
        decimals=(7 - np.floor(np.log10(5 * scale))).astype(int),  # 5 * scale: a typical largest value
    )


def validate(rows: int, break_rate: float, seed: int = 0) -> None:
    if seed < 0:
        raise UserError(f"seed {seed}: must be 0 or more")
    if rows < MIN_ROWS:
        raise UserError(f"rows={rows}: too few for a data set with breaks; need at least {MIN_ROWS}")
    if not 0 <= break_rate <= MAX_BREAK_RATE:
        raise UserError(f"break rate {break_rate}: must be between 0 and {MAX_BREAK_RATE}")


def break_count(rows: int, break_rate: float) -> int:
    """At least one break whenever the rate allows any, so even a tiny demo has an event."""
    return max(1, round(rows * break_rate)) if break_rate > 0 else 0


def break_rows(rng, rows: int, count: int) -> np.ndarray:
    """Sorted row numbers of the breaks, at least MIN_BREAK_SPACING apart, none in the last row
    (every break is followed by a restart)."""
    slots = rows - 1 - FIRST_BREAK_ROW
    free = slots - (count - 1) * (MIN_BREAK_SPACING - 1)
    if free < count:
        raise UserError(f"{count} breaks do not fit in {rows} rows; lower the break rate")
    # Choosing among the free slots and then spreading them out keeps the spacing exact.
    chosen = np.sort(rng.choice(free, size=count, replace=False))
    return FIRST_BREAK_ROW + chosen + np.arange(count) * (MIN_BREAK_SPACING - 1)


def grade_index(rng, rows: int) -> np.ndarray:
    """Index into GRADE_CODES for every row: long runs, each a different grade from the last."""
    low, high = GRADE_RUN_ROWS
    lengths = rng.integers(low, high + 1, rows // low + 1)
    weights = GRADE_ROWS / GRADE_ROWS.sum()
    codes = [rng.choice(len(GRADE_CODES), p=weights)]
    for _ in lengths[1:]:
        others = weights.copy()
        others[codes[-1]] = 0.0
        codes.append(rng.choice(len(GRADE_CODES), p=others / others.sum()))
    return np.repeat(codes, lengths)[:rows]


def elapsed_minutes(rng, rows: int, breaks: np.ndarray) -> np.ndarray:
    steps = np.full(rows, STEP_MINUTES)
    steps[0] = 0
    low, high = GAP_MINUTES
    gaps = rng.integers(low // STEP_MINUTES, high // STEP_MINUTES + 1, len(breaks))
    steps[breaks + 1] = STEP_MINUTES * gaps
    return np.cumsum(steps)


def unit_ar1(rng, rows: int, phi: np.ndarray, restart: np.ndarray) -> np.ndarray:
    """AR(1) columns x[t] = phi * x[t-1] + e[t] with unit variance once settled, started from
    0 (the baseline) wherever ``restart`` is true.

    One vectorized step per row across all columns: faster here than a log-depth prefix scan.
    """
    x = rng.normal(size=(rows, len(phi)))
    x *= np.sqrt(1 - phi**2)
    for t in np.flatnonzero(~restart[1:]) + 1:  # restart rows keep their own draw only
        x[t] += phi * x[t - 1]
    return x


def normal_operation(rng, plant: Plant, rows: int, restart: np.ndarray) -> np.ndarray:
    phi = np.concatenate([plant.factor_phi, np.full(len(NUMERIC), NOISE_PHI)])
    series = unit_ar1(rng, rows, phi, restart)
    factors, noise = series[:, :N_FACTORS], series[:, N_FACTORS:]
    # In place, in the same order as (factors @ L.T) * a + noise * b: the same numbers, less memory.
    z = factors @ plant.loadings.T
    z *= np.sqrt(plant.shared)
    noise *= np.sqrt(1 - plant.shared)
    z += noise
    return z


def day_drift(rng, plant: Plant, minutes: np.ndarray) -> np.ndarray:
    phase = rng.uniform(0, 2 * np.pi, len(NUMERIC))
    angle = 2 * np.pi * minutes[:, None] / plant.day_period_minutes
    angle += phase
    np.sin(angle, out=angle)
    angle *= plant.day_amplitude
    return angle


def pre_break_drift(rng, plant: Plant, rows: int, breaks: np.ndarray) -> np.ndarray:
    """Growing drift in a few culprit sensors over the rows before each break, peaking at it.

    Over ``length`` rows before a break the drift grows linearly to ``amplitude`` (3 to 6
    standard units) on the row just before the break and goes one step further on the break.
    """
    n = len(breaks)
    lengths = rng.integers(DRIFT_ROWS[0], DRIFT_ROWS[1] + 1, n)
    how_many = rng.integers(CULPRITS_PER_BREAK[0], CULPRITS_PER_BREAK[1] + 1, n)
    chosen = rng.random((n, len(CULPRITS))).argsort(axis=1).argsort(axis=1) < how_many[:, None]
    amplitude = rng.uniform(3.0, 6.0, (n, len(CULPRITS))) * chosen * plant.culprit_sign

    back = np.arange(DRIFT_ROWS[1] + 1)  # 0 is the break row itself
    growth = np.clip((lengths[:, None] + 1 - back) / lengths[:, None], 0.0, None)  # (n, back)
    drift = np.zeros((rows, len(NUMERIC)))
    columns = [NUMERIC.index(name) for name in CULPRITS]
    target = (breaks[:, None] - back)[:, :, None]
    drift[target, np.array(columns)] = growth[:, :, None] * amplitude[:, None, :]
    return drift


def time_strings(minutes: np.ndarray, start: pd.Timestamp = START) -> pd.Series:
    """``5/1/99 0:00``: month, day and hour without leading zeros, as in the real file."""
    t = pd.Series(start + pd.to_timedelta(minutes, unit="min"))
    dt = t.dt
    return (
        dt.month.astype(str) + "/" + dt.day.astype(str) + "/" + (dt.year % 100).astype(str).str.zfill(2)
        + " " + dt.hour.astype(str) + ":" + dt.minute.astype(str).str.zfill(2)
    )


def make_sheet_breaks(rows: int = 6000, seed: int | list[int] = 0, break_rate: float = 0.007,
                      start: pd.Timestamp = START) -> pd.DataFrame:
    """A synthetic sheet-break data set: columns ``time, y, x1..x61``, ``time`` as text, the
    first row at ``start``."""
    validate(rows, break_rate, seed if isinstance(seed, int) else seed[0])
    rng = np.random.default_rng(seed)
    plant = make_plant()

    breaks = break_rows(rng, rows, break_count(rows, break_rate))
    restart = np.zeros(rows, dtype=bool)
    restart[0] = True
    restart[breaks + 1] = True
    minutes = elapsed_minutes(rng, rows, breaks)
    grades = grade_index(rng, rows)

    # z = normal + grade level + day drift + pre-break drift, summed in place (left to right,
    # as the plain expression would) so that only one (rows, 59) array is kept.
    z = normal_operation(rng, plant, rows, restart)
    z += plant.grade_level[grades]
    z += day_drift(rng, plant, minutes)
    z += pre_break_drift(rng, plant, rows, breaks)
    z *= plant.scale  # readings = mean + scale * z
    z += plant.mean
    # Rounded here so that the frame equals what write_csv puts in the file; + 0.0 drops -0.0.
    for j, places in enumerate(plant.decimals):
        np.round(z[:, j], places, out=z[:, j])
    z += 0.0

    y = np.zeros(rows, dtype=np.int64)
    y[breaks] = 1
    columns = {"time": time_strings(minutes, start), "y": y}
    columns.update((name, z[:, j]) for j, name in enumerate(NUMERIC))
    columns["x28"] = GRADE_CODES[grades]
    columns["x61"] = (rng.random(rows) < PRESS_EVENT_RATE).astype(np.int64)
    return pd.DataFrame({name: columns[name] for name in COLUMNS})


def spans(rows: int, seed: int = 0, break_rate: float = 0.007):
    """:func:`make_sheet_breaks` of ``rows`` rows as frames of at most about :data:`SPAN_ROWS`
    rows, so that a file of millions of rows is made in bounded memory. Up to SPAN_ROWS rows,
    one frame, the same as ``make_sheet_breaks(rows, seed)``; after it, each span is another
    stretch of the same plant (its own seed drawn from ``seed``), starting after a downtime."""
    validate(rows, break_rate, seed)
    sizes = [SPAN_ROWS] * (rows // SPAN_ROWS) + ([rows % SPAN_ROWS] if rows % SPAN_ROWS else [])
    if len(sizes) > 1 and sizes[-1] < MIN_ROWS:
        sizes[-2:] = [sizes[-2] + sizes[-1]]
    downtime = np.random.default_rng([seed, 0]).integers(GAP_MINUTES[0], GAP_MINUTES[1] + 1, len(sizes))
    start = START
    for i, size in enumerate(sizes):
        frame = make_sheet_breaks(size, seed if i == 0 else [seed, i], break_rate, start)
        yield frame
        last = pd.Timestamp(pd.to_datetime(frame["time"].iloc[-1], format="%m/%d/%y %H:%M"))
        start = last + pd.Timedelta(minutes=int(downtime[i]))


def write_csv(frames, path, chunk_rows: int = WRITE_CHUNK_ROWS) -> tuple[int, int]:
    """Write a frame from :func:`make_sheet_breaks` (or the frames of :func:`spans`, one after
    another) atomically, with LF line endings and the sensors in fixed notation at their plant
    precision (as in the real file: no exponents); gzip-compressed when ``path`` ends in ``.gz``.
    Returns the rows and breaks written.

    One %-format per row: several times faster than ``DataFrame.to_csv`` on wide frames. The
    text is made and written ``chunk_rows`` rows at a time, so memory stays small next to the
    frame; the bytes do not depend on ``chunk_rows``.
    """
    places = dict(zip(NUMERIC, make_plant().decimals))
    formats = [f"%.{places[name]}f" if name in places else "%s" for name in COLUMNS]
    row = ",".join(formats) + "\n"
    rows = breaks = 0
    with atomic_output(path) as handle:
        handle.write((",".join(COLUMNS) + "\n").encode("utf-8"))
        for frame in [frames] if isinstance(frames, pd.DataFrame) else frames:
            arrays = [frame[name].to_numpy() for name in COLUMNS]
            for start in range(0, len(frame), chunk_rows):
                columns = [values[start:start + chunk_rows].tolist() for values in arrays]
                handle.write("".join(row % values for values in zip(*columns)).encode("utf-8"))
            rows, breaks = rows + len(frame), breaks + int(frame["y"].sum())
    return rows, breaks


@contextmanager
def atomic_output(path, compresslevel: int = 6):
    """A binary handle to write ``path`` in pieces, either completely or not at all: a
    temporary file beside it, renamed into place once written (the same idea as
    :func:`lstm_rare_event.run.atomic_write_text`, which takes the whole text at once).
    A path ending in ``.gz`` gets gzip data (no time stamp, so the same bytes give the same file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.partial"
        try:  # mode 0o666 less the umask, as for any new file
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "wb") as raw:
            if path.name.lower().endswith(".gz"):
                with gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=0,
                                   compresslevel=compresslevel) as handle:
                    yield handle
            else:
                yield raw
        durable_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

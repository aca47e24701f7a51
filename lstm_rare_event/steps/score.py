"""The ``score`` step: flag new data in batch with a trained run, in bounded memory.

New rows go through exactly what ``prepare`` did to the training rows (the saved column
selection, detrending, scaler and window rule), the saved model reconstructs every window, and
a window is flagged when its error is above the saved threshold. Large files are read in
chunks; each chunk is scored together with a tail of raw rows from the one before, long enough
for the detrending baselines and the first window, so every window is scored once, exactly as
if the whole file had been read at once.

This runs from cron on every call: NumPy, pandas and our light modules only, never TensorFlow
or scikit-learn (their imports alone cost seconds).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_rare_event.run import check_run
from lstm_rare_event.preprocess.csv import LABEL, TIME, check_table, read_csv, read_error, select_features
from lstm_rare_event.preprocess.detrend import detrend
from lstm_rare_event.detectors.lstm_ae.numpy_engine import BATCH, load_model, model_file
from lstm_rare_event.errors import UserError
from lstm_rare_event.steps.prepare import PREPARE_JSON, load_info
from lstm_rare_event.reconstruction import feature_errors, window_errors
from lstm_rare_event.scaling import SCALER_NPZ, apply_scaling, load_scaler_params
from lstm_rare_event.alarms.thresholds import THRESHOLD_JSON, flag, read_threshold
from lstm_rare_event.preprocess.windows import segments, stack, window_ends

CHUNK_ROWS = 50_000
TOP_SENSORS = 3


@dataclass(frozen=True)
class Recipe:
    """What ``prepare`` did to the rows of a run, read back to do the same to new data."""

    features: list[str]
    selected: tuple[str, ...] | None  # prepare's --features, if it was given
    drop: tuple[str, ...]
    lookback: int
    interval: np.timedelta64
    detrend: int
    clip: float
    allow_gaps: bool
    mean: np.ndarray
    scale: np.ndarray

    @property
    def context_rows(self) -> int:
        """Raw rows before a chunk that its windows reach back to: lookback - 1 rows for the
        first window, each of which needs ``detrend`` rows before it for its baseline."""
        return self.detrend + self.lookback - 1


@dataclass(frozen=True)
class Run:
    recipe: Recipe
    model: object
    threshold: float
    error: str


def load_recipe(run_dir) -> Recipe:
    info = load_info(run_dir)
    options = info["options"]
    mean, scale = load_scaler_params(run_dir)
    return Recipe(
        features=list(info["features"]),
        selected=tuple(options["features"]) if options.get("features") else None,
        drop=tuple(options["drop"]),
        lookback=int(info["lookback"]),
        interval=np.timedelta64(int(round(info["interval_minutes"] * 60)), "s"),
        detrend=int(options["detrend"]),
        clip=float(options.get("clip", 0)),
        allow_gaps=bool(options["allow_gaps"]),
        mean=mean,
        scale=scale,
    )


def load_run(run_dir, engine: str = "numpy") -> Run:
    """Everything scoring needs from ``run_dir``, refusing files that come from different runs."""
    check_run(run_dir, {
        "prepare": [PREPARE_JSON, SCALER_NPZ],
        "train": [model_file(engine)],
        "threshold": [THRESHOLD_JSON],
    })
    threshold = read_threshold(run_dir)
    return Run(load_recipe(run_dir), load_model(run_dir, engine), float(threshold["value"]), threshold["error"])


def check_columns(columns, source, recipe: Recipe) -> None:
    """The columns of new data must give exactly the training features under prepare's own
    selection rule; extra columns are fine only where prepare would have ignored them too."""
    chosen = select_features(columns, source, recipe.selected, recipe.drop)
    missing = [name for name in recipe.features if name not in chosen]
    if missing:
        raise UserError(f"{source}: missing column(s) {', '.join(missing)}, which the model was trained on")
    extra = [name for name in chosen if name not in recipe.features]
    if extra:
        raise UserError(
            f"{source}: column(s) {', '.join(extra)} were not among the {len(recipe.features)} training features; "
            f"a different feature set from training (prepare used every column but {TIME}, {LABEL} and "
            f"{', '.join(recipe.drop) or 'none'})"
        )


def transform_rows(values: np.ndarray, segment: np.ndarray, recipe: Recipe) -> np.ndarray:
    """Raw sensor rows -> the model's input rows: detrended within segments, scaled, clipped."""
    return apply_scaling(detrend(values, segment, recipe.detrend), recipe.mean, recipe.scale, recipe.clip)


def top_sensors(feature_err: np.ndarray, features, k: int = TOP_SENSORS) -> tuple[np.ndarray, np.ndarray]:
    """Per window, the ``k`` features with the largest share of the error, largest first:
    (names (N, k), shares (N, k)). A share is the feature's part of the window's summed
    feature errors; 0 for a window reconstructed exactly. Fewer than ``k`` features: all."""
    k = min(k, feature_err.shape[1])
    order = np.argsort(-feature_err, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(feature_err, order, axis=1)
    total = feature_err.sum(axis=1, keepdims=True)
    shares = np.divide(top, total, out=np.zeros_like(top), where=total > 0)
    return np.asarray(features, dtype=object)[order], shares


def output_columns(n_features: int) -> list[str]:
    k = min(TOP_SENSORS, n_features)
    return ["time", "error", "flag", *(f"{what}_{i}" for i in range(1, k + 1) for what in ("sensor", "share"))]


def score_windows(run: Run, X: np.ndarray, end_time: np.ndarray) -> dict:
    """The output columns for windows ``X`` ending at ``end_time``."""
    feature_err = feature_errors(X, run.model.predict(X), run.error)
    error = window_errors(feature_err)
    names, shares = top_sensors(feature_err, run.recipe.features)
    columns = {"time": np.datetime_as_string(end_time, unit="s"), "error": error,
               "flag": flag(error, run.threshold).astype(np.int8)}
    for i in range(names.shape[1]):
        columns[f"sensor_{i + 1}"] = names[:, i]
        columns[f"share_{i + 1}"] = shares[:, i]
    return columns


def check_finite(columns: dict, source) -> None:
    # NaN is never above a threshold: such a window would silently pass as normal.
    bad = np.flatnonzero(~np.isfinite(columns["error"]))
    if bad.size:
        raise UserError(f"{source}: the window ending {columns['time'][bad[0]]} has a reconstruction error "
                        "that is not finite (sensor values far outside the training range?)")


def score_rows(run: Run, time: np.ndarray, values: np.ndarray, first_new: int):
    """Score the windows that end at row ``first_new`` or later; the rows before are context.

    Yields one dict of output columns per batch of windows, so memory stays bounded.
    """
    recipe = run.recipe
    segment = segments(time, recipe.interval)
    rows = transform_rows(values, segment, recipe)
    # With --allow-gaps the windows span gaps (one segment), but detrending still restarts there.
    ends = window_ends(np.zeros_like(segment) if recipe.allow_gaps else segment, recipe.lookback)
    ends = ends[ends >= first_new]
    for start in range(0, len(ends), BATCH):
        batch = ends[start:start + BATCH]
        yield score_windows(run, stack(rows, batch, recipe.lookback), time[batch])


def read_chunks(path, chunk_rows: int):
    """The raw CSV in chunks of ``chunk_rows`` rows (a header-only file gives one empty chunk)."""
    reader = read_csv(path, chunk_rows)
    with reader:
        while True:
            try:
                raw = next(reader)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - every read failure becomes one line
                raise read_error(Path(path), exc) from None
            yield raw


def score_stream(run: Run, path, chunk_rows: int):
    """Yield (rows read so far, batches of output columns) over the whole file, chunk by chunk.

    Each chunk is scored after a tail of the previous rows (raw values, before detrending), so
    its windows see the same rows and baselines as in one pass; only windows ending in the new
    rows are emitted, so each window comes out exactly once.
    """
    recipe = run.recipe
    tail_time = np.empty(0, dtype="datetime64[s]")
    tail_values = np.empty((0, len(recipe.features)))
    last_time, rows = None, 0
    for raw in read_chunks(path, chunk_rows):
        if rows == 0:
            check_columns(raw.columns, path, recipe)
        if raw.empty:
            continue
        table = check_table(raw, path, recipe.features, labels="ignore", first_row=rows + 1, previous_time=last_time)
        time = np.concatenate([tail_time, table.time])
        values = np.concatenate([tail_values, table.values])
        rows += len(table)
        yield rows, score_rows(run, time, values, first_new=len(tail_time))
        keep = max(len(time) - recipe.context_rows, 0)
        tail_time, tail_values, last_time = time[keep:], values[keep:], time[-1]
    if rows < recipe.lookback:
        raise UserError(f"{path}: {rows} data rows, fewer than one window of {recipe.lookback} rows "
                        "(the run's lookback)")


@contextmanager
def atomic_output(path: Path):
    """A text file open at a temporary name beside ``path``, renamed to ``path`` when the block
    succeeds and removed when it fails: a cron reader never sees a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(tmp, "x", encoding="utf-8", newline="")
    except OSError as exc:
        raise UserError(f"{path}: cannot write the output ({exc.strerror})") from None
    try:
        with handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def score_file(run_dir, input_path, out_path, chunk_rows: int = CHUNK_ROWS, engine: str = "numpy") -> dict:
    """Score every window of ``input_path`` with the run in ``run_dir`` and write them as CSV to
    ``out_path`` (time, error, flag, sensor_1, share_1, ...); returns a summary."""
    if chunk_rows < 1:
        raise UserError(f"--chunk-rows must be a positive number of rows, got {chunk_rows}")
    run = load_run(run_dir, engine)
    header = output_columns(len(run.recipe.features))
    windows = alarms = rows = 0
    first_alarm = last_alarm = None
    out_path = Path(out_path)
    # Absurd readings overflow float32 on the way through the network; check_finite reports
    # that in one line, so NumPy's warnings would only add noise to a cron mail.
    with np.errstate(over="ignore", invalid="ignore"), atomic_output(out_path) as handle:
        handle.write(",".join(header) + "\n")
        for rows, batches in score_stream(run, input_path, chunk_rows):
            for columns in batches:
                check_finite(columns, input_path)
                pd.DataFrame(columns, columns=header).to_csv(handle, header=False, index=False, lineterminator="\n")
                flagged = columns["time"][columns["flag"] == 1]
                windows += len(columns["time"])
                alarms += len(flagged)
                if flagged.size:
                    first_alarm = first_alarm or str(flagged[0])
                    last_alarm = str(flagged[-1])
        if windows == 0:
            raise UserError(f"{input_path}: no window to score: no {run.recipe.lookback} consecutive rows "
                            f"without a time gap longer than {run.recipe.interval / np.timedelta64(1, 'm'):g} minutes")
    return {
        "input": str(input_path),
        "output": str(out_path),
        "run_dir": str(run_dir),
        "rows": rows,
        "windows": windows,
        "alarms": alarms,
        "first_alarm": first_alarm,
        "last_alarm": last_alarm,
        "threshold": run.threshold,
        "error": run.error,
        "engine": engine,
    }


def summary_line(summary: dict) -> str:
    alarms = summary["alarms"]
    plural = "" if alarms == 1 else "s"
    line = f"scored {summary['windows']:,} windows ({summary['rows']:,} rows): {alarms:,} alarm{plural}"
    if alarms:
        line += f", first {summary['first_alarm']}, last {summary['last_alarm']}"
    return f"{line} -> {summary['output']}"

"""The ``score`` step: flag new data with a trained run, in bounded memory.

New rows go through the run's own :class:`Preprocessor` (the same code path as ``prepare``),
the run's detector scores every window, and a window is flagged when its score is above the
saved threshold. Large files are read in chunks; each chunk is scored together with a tail of
raw rows from the one before, long enough for the detrending baselines and the first window,
so every window is scored once, exactly as if the whole file had been read at once.

This runs from cron on every call: NumPy, pandas and our light modules only, never TensorFlow
or scikit-learn (their imports alone cost seconds).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_rare_event.alarms.thresholds import flag
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import pid_alive
from lstm_rare_event.preprocess.csv import Table, check_table, read_csv, read_error
from lstm_rare_event.preprocess.preprocessor import Preprocessor
from lstm_rare_event.preprocess.windows import Windows
from lstm_rare_event.run import DETECTOR, MANIFEST, PREPROCESSOR, THRESHOLD_JSON, Run

CHUNK_ROWS = 50_000
TOP_SENSORS = 3
BATCH = 4096  # windows scored at a time: bounds memory


@dataclass(frozen=True)
class Scorer:
    """Everything scoring needs from a run, loaded once."""

    preprocessor: Preprocessor
    detector: object
    threshold: float


def load_scorer(run_dir, engine: str = "numpy", wait: float = 60.0) -> Scorer:
    """The run's preprocessor, detector and threshold, read as one consistent snapshot and
    refused when they do not come from one run."""
    run = Run(run_dir)
    with run.reading(wait):
        run.check("prepare", [PREPROCESSOR])
        run.check("train", [DETECTOR])
        run.check("threshold", [THRESHOLD_JSON])
        return Scorer(run.preprocessor(), run.detector(engine=engine), run.threshold().value)


def top_sensors(contributions: np.ndarray, features, k: int = TOP_SENSORS) -> tuple[np.ndarray, np.ndarray]:
    """Per window, the ``k`` features with the largest share of the score, largest first:
    (names (N, k), shares (N, k)). A share is the feature's part of the window's summed
    contributions; 0 for a window whose contributions sum to 0. Fewer than ``k`` features: all."""
    k = min(k, contributions.shape[1])
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(contributions, order, axis=1)
    total = contributions.sum(axis=1, keepdims=True)
    shares = np.divide(top, total, out=np.zeros_like(top), where=total > 0)
    return np.asarray(features, dtype=object)[order], shares


def output_columns(n_features: int, has_contributions: bool = True) -> list[str]:
    k = min(TOP_SENSORS, n_features) if has_contributions else 0
    return ["time", "score", "flag", *(f"{what}_{i}" for i in range(1, k + 1) for what in ("sensor", "share"))]


def score_windows(scorer: Scorer, windows, source=None) -> dict:
    """The output columns for ``windows`` (read from ``source``, named in errors)."""
    try:
        scores, contributions = scorer.detector.explain(windows)
    except UserError as exc:
        if source is None:
            raise
        raise UserError(f"{source}: {exc}") from None
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:  # NaN is never above the threshold: it would pass as "no alarm"
        raise UserError(f"{source}: the {scorer.detector.name} score of the window ending "
                        f"{windows.end_time[bad[0]]} is not finite (sensor values far outside the training range)")
    columns = {"time": np.datetime_as_string(windows.end_time, unit="s"), "score": scores,
               "flag": flag(scores, scorer.threshold).astype(np.int8)}
    if contributions is not None:
        names, shares = top_sensors(contributions, scorer.preprocessor.features_)
        for i in range(names.shape[1]):
            columns[f"sensor_{i + 1}"] = names[:, i]
            columns[f"share_{i + 1}"] = shares[:, i]
    return columns


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


def score_stream(scorer: Scorer, path, chunk_rows: int):
    """Yield (rows read so far, batches of output columns) over the whole file, chunk by chunk.

    Each chunk is scored after a tail of the previous rows (raw values, before detrending), so
    its windows see the same rows and baselines as in one pass; only windows ending in the new
    rows are emitted, so each window comes out exactly once. Windows are scored in batches of
    ``BATCH`` counted from the file's first window, whatever the chunks: a matrix product's
    rounding can depend on how many rows it multiplies at once.
    """
    pre = scorer.preprocessor
    pending = None  # windows of earlier chunks not scored yet, fewer than BATCH

    def batches(staged, ends):
        nonlocal pending
        start = 0
        while start < len(ends):
            need = BATCH - (0 if pending is None else len(pending))
            part = pre.windows(staged, ends[start:start + need])
            start += need
            pending = part if pending is None else Windows.concat([pending, part])
            if len(pending) == BATCH:
                full, pending = pending, None
                yield score_windows(scorer, full, path)

    tail: Table | None = None
    tail_start = None  # the restart time of the tail's first segment, which began before it
    last_time, rows, features = None, 0, None
    for raw in read_chunks(path, chunk_rows):
        if features is None:
            features = pre.select(raw.columns, path)
        if raw.empty:
            continue
        table = check_table(raw, path, features, labels="optional", first_row=rows + 1, previous_time=last_time,
                            earlier_offsets=None if tail is None else tail.utc_offset is not None)
        first_new = 0 if tail is None else len(tail)
        if tail is not None:
            table = Table.concat(tail, table)
        rows += len(table) - first_new
        staged = pre.rows(table, first_segment_start=tail_start)
        ends = pre.window_ends(staged)
        ends = ends[staged.source_row[ends] >= first_new]
        yield rows, batches(staged, ends)
        keep = pre.context_start(staged)
        tail_start = staged.table_segment_start[keep] if keep < len(table) else None
        tail = table.subset(slice(keep, None))
        last_time = table.time[-1]
    if rows < pre.lookback:
        raise UserError(f"{path}: {rows} data rows, fewer than one window of {pre.lookback} rows "
                        "(the run's lookback)")
    if pending is not None:
        yield rows, iter([score_windows(scorer, pending, path)])


def check_output(out_path: Path, input_path, run_dir) -> None:
    """--out may be neither the input nor a file of a run directory."""
    out = out_path.resolve()
    if out == Path(input_path).resolve():
        raise UserError(f"{out_path}: --out is the input file; choose another output")
    if (out.parent / MANIFEST).exists() or out.parent == Path(run_dir).resolve() or \
            any((p / MANIFEST).exists() for p in out.parents[:3]):
        raise UserError(f"{out_path}: --out is inside a run directory; write scores elsewhere")


def _clean_partials(path: Path) -> None:
    """Partial outputs that dead processes left beside ``path`` (SIGKILL, power loss)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.partial$")
    for leftover in path.parent.glob(f".{path.name}.*.partial"):
        match = pattern.match(leftover.name)
        if match and not pid_alive(int(match.group(1))):
            leftover.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: Path):
    """A text file open at a temporary name beside ``path``, renamed to ``path`` when the block
    succeeds and removed when it fails: a cron reader never sees a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _clean_partials(path)
        handle = open(tmp, "w", encoding="utf-8", newline="")
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
    ``out_path`` (time, score, flag, sensor_1, share_1, ...); returns a summary."""
    if chunk_rows < 1:
        raise UserError(f"--chunk-rows must be a positive number of rows, got {chunk_rows}")
    out_path = Path(out_path)
    check_output(out_path, input_path, run_dir)
    scorer = load_scorer(run_dir, engine)
    header = None
    windows = alarms = rows = 0
    first_alarm = last_alarm = None
    with atomic_output(out_path) as handle:
        for rows, batches in score_stream(scorer, input_path, chunk_rows):
            for columns in batches:
                if header is None:
                    header = list(columns)
                    handle.write(",".join(header) + "\n")
                pd.DataFrame(columns, columns=header).to_csv(handle, header=False, index=False, lineterminator="\n")
                flagged = columns["time"][columns["flag"] == 1]
                windows += len(columns["time"])
                alarms += len(flagged)
                if flagged.size:
                    first_alarm = first_alarm or str(flagged[0])
                    last_alarm = str(flagged[-1])
        if windows == 0:
            pre = scorer.preprocessor
            raise UserError(f"{input_path}: no window to score: no {pre.lookback} consecutive rows "
                            f"without a time gap longer than {pre.interval_minutes:g} minutes")
    return {
        "input": str(input_path),
        "output": str(out_path),
        "run_dir": str(run_dir),
        "detector": scorer.detector.name,
        "sensors": "named per window" if "sensor_1" in header else
                   f"none: the {scorer.detector.name} detector uses no sensor",
        "rows": rows,
        "windows": windows,
        "alarms": alarms,
        "first_alarm": first_alarm,
        "last_alarm": last_alarm,
        "threshold": scorer.threshold,
        "engine": engine,
    }


def summary_line(summary: dict) -> str:
    alarms = summary["alarms"]
    plural = "" if alarms == 1 else "s"
    line = f"scored {summary['windows']:,} windows ({summary['rows']:,} rows): {alarms:,} alarm{plural}"
    if alarms:
        line += f", first {summary['first_alarm']}, last {summary['last_alarm']}"
    return f"{line} -> {summary['output']}"

"""The ``prepare`` step: CSV in; the fitted preprocessor, the scaled rows and each split's
windows out, a block of rows at a time, so files larger than memory can be prepared."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lstm_rare_event import log
from lstm_rare_event.version import __version__
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.csv import LABEL, Table, read_table
from lstm_rare_event.preprocess.inputs import Inputs, expand
from lstm_rare_event.preprocess.spans import parse_span
from lstm_rare_event.preprocess.preprocessor import Preprocessor, no_window_line, no_window_summary
from lstm_rare_event.preprocess.split import PrepareOptions, split_ends, time_cuts
from lstm_rare_event.preprocess.windows import Windows, save_splits
from lstm_rare_event.run import DEFAULT_WAIT, PREPARE_JSON, PREPROCESSOR, ROWS_NPY, SPLIT_FILES, Run

@dataclass
class Prepared:
    splits: dict[str, Windows]
    preprocessor: Preprocessor
    info: dict
    #: where the scaled rows are when no folder was given (removed with this object)
    scratch: tempfile.TemporaryDirectory | None = None


def prepare(path, options: PrepareOptions = PrepareOptions(), sep: str = ",", decimal: str = ".",
            rows_path: Path | None = None, scratch: Path | None = None) -> Prepared:
    """Read ``path`` (CSV read with ``sep`` and ``decimal``, or Parquet; or several files in
    time order, :class:`~lstm_rare_event.preprocess.inputs.Inputs`) and build scaled windows
    for train, valid and test. With ``--last`` as a duration, only the files that can hold the
    last rows are read.

    Memory holds times, labels and window indexes, never the sensor values of the whole file:
    they are spilled to ``scratch``, detrended and scaled a block at a time, and the scaled rows
    written to ``rows_path`` (``rows.npy``), from which the windows are cut when read. Without
    ``rows_path``, both are in a temporary folder that lives as long as the result."""
    inputs = path if isinstance(path, Inputs) else \
        expand(path if isinstance(path, (list, tuple)) else [path], sep, decimal, options.columns)
    path = inputs
    temporary = None
    if rows_path is None:
        temporary = tempfile.TemporaryDirectory(prefix="lstm-rare-event-prepare.")
        rows_path, scratch = Path(temporary.name) / ROWS_NPY, Path(temporary.name)
    # Without the default label column the data is unlabelled; a label column named by the user must be there.
    labels = "optional" if options.label_column == LABEL else "required"
    span = None if options.last is None else parse_span(options.last, "--last")
    if span is not None:
        inputs = inputs.last(span, sep, decimal, options.columns)
    table = read_table(inputs, options.features, options.drop, labels=labels, sep=sep, decimal=decimal,
                       values_to=scratch / "values.f64", columns=options.columns)
    if span is not None:
        table = most_recent(table, span)
    if options.train_rows is not None and options.train_rows >= len(table):
        raise UserError(f"{path}: --train-rows {options.train_rows} leaves none of its {len(table)} rows to judge")
    if len(table) < options.lookback:
        raise UserError(f"{path}: {len(table)} data rows, fewer than one window of --lookback {options.lookback}")
    try:
        pre = Preprocessor(options.preprocess).fit_layout(table, sep, decimal)
    except UserError as exc:  # a single row has no cadence
        raise UserError(f"{path}: {exc}") from None
    rows = pre.rows(table, values_to=scratch / "detrended.f64")
    if len(rows) < options.lookback:
        raise UserError(f"{path}: {len(rows)} rows after removing break rows, fewer than one window")
    ends = pre.window_ends(rows, recipe_index=options.allow_gaps)
    if len(ends) == 0:
        raise UserError(f"{path}: no window of {options.lookback} rows without a time gap; "
                        "use fewer --lookback rows, a longer --max-gap, or --allow-gaps")
    # --train-rows counts the file's rows; the split cuts the rows kept after the label shift.
    fit_rows = None if options.train_rows is None else int(np.searchsorted(rows.source_row, options.train_rows))
    parts = split_ends(ends, len(rows), options, fit_rows)
    for name, idx in parts.items():
        if len(idx) == 0:
            raise UserError(f"{path}: the {name} split has no windows; use more rows or other --fractions")
    try:
        pre.fit_scaler(rows, parts["train"])
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    scaled = pre.write_scaled(rows, rows_path)
    splits = {name: pre.windows(rows, idx, scaled) for name, idx in parts.items()}
    if options.labels == "intervals":
        fitting = np.concatenate([parts["train"], parts["valid"]])
        anomalous = int(rows.y[fitting].sum())
        if anomalous:
            log.warning(f"{path}: {anomalous:,} of the {len(fitting):,} train and valid windows end in labelled "
                        "anomaly intervals; the scaler and the detectors fit on the normal ones")
    coverage = rows_without_windows(pre, rows, ends, parts, options, fit_rows)
    for part, summary in coverage.items():
        line, large = no_window_line(summary, "rows" if part == "all" else "judged (test) rows")
        (log.warning if large else log.info)(f"{path}: {line}")

    labelled = table.y is not None
    breaks = int(table.y.sum()) if labelled else 0
    if not labelled:
        log.warning(f"{path}: no '{options.label_column}' label column: unlabelled data, every row is taken as "
                    "normal (name the label column with --label-column)")
    elif breaks == 0:
        log.warning(f"{path}: no break ({options.label_column}=1) rows; every window is normal")
    info = {
        "package_version": __version__,
        "input": {"path": str(path), "sha256": inputs.sha256(), "rows": len(table), "breaks": breaks,
                  "labelled": labelled, "sep": sep, "decimal": decimal,
                  **({"files": [str(s) for s in inputs.sources]} if len(inputs) > 1 else {})},
        "options": asdict(options),
        "features": table.features,
        "n_features": len(table.features),
        "lookback": options.lookback,
        "interval_minutes": pre.interval_minutes,
        # The data's own time zone, for figures: the last row's UTC offset (None: times without one).
        "utc_offset_seconds": None if table.utc_offset is None else int(table.utc_offset[-1]),
        "max_gap_minutes": float(pre.max_gap_ / np.timedelta64(1, "m")),
        "time_gaps": int((np.diff(table.time) > pre.max_gap_).sum()),
        "rows_after_shift": len(rows),
        "windows": int(sum(len(w) for w in splits.values())),
        "splits": {name: split_summary(w) for name, w in splits.items()},
        "coverage": coverage,
    }
    return Prepared(splits, pre, info, temporary)


def rows_without_windows(pre: Preprocessor, rows, ends: np.ndarray, parts: dict, options: PrepareOptions,
                         fit_rows: int | None) -> dict:
    """How many rows end no window, and why: over all rows, and over the judged (test) rows when
    they are a stretch of time."""
    used = np.sort(np.concatenate(list(parts.values())))
    reasons = pre.no_window(rows, ends, used)
    coverage = {"all": no_window_summary(reasons)}
    if options.split == "time" and "test" in parts:
        cut = time_cuts(len(rows), options.fractions)[1] if fit_rows is None else fit_rows
        first = int(rows.source_row[cut]) if cut < len(rows) else len(reasons)
        coverage["judged"] = no_window_summary(reasons[first:])
    return coverage


def most_recent(table: Table, span) -> Table:
    """The last ``span`` of ``table``: a row count, or the rows within a duration of its last row."""
    if isinstance(span, int):
        keep = slice(max(len(table) - span, 0), None)
    else:
        keep = slice(int(np.searchsorted(table.time, table.time[-1] - span, side="right")), None)
    return table.subset(keep)


def split_summary(windows: Windows) -> dict:
    return {
        "windows": len(windows),
        "positive": int(windows.y.sum()),
        "breaks": int(np.unique(windows.event_time[windows.y == 1]).size),
        "first_end": str(windows.end_time.min()),
        "last_end": str(windows.end_time.max()),
    }


def prepare_run(path, out_dir, options: PrepareOptions = PrepareOptions(), sep: str = ",", decimal: str = ".",
                wait: float = DEFAULT_WAIT) -> dict:
    """Prepare ``path`` into the run directory ``out_dir``: the scaled rows, every split's
    windows, the preprocessor and prepare.json; all or nothing. Results of later steps stay,
    but the manifest marks them as made from other data, so they are refused. Returns the
    information in prepare.json."""
    run = Run(out_dir)
    existed = run.path.exists()
    try:
        with run.locked(wait, create=True), run.writer("prepare", asdict(options), inputs={}) as out:
            with out.scratch() as scratch:
                prepared = prepare(path, options, sep, decimal, rows_path=out.path(ROWS_NPY), scratch=scratch)
            save_splits(None, {name: out.path(SPLIT_FILES[name]) for name in prepared.splits}, prepared.splits)
            prepared.preprocessor.save(out.path(PREPROCESSOR))
            out.json(PREPARE_JSON, prepared.info)
    except BaseException:
        if not existed:  # a rejected input leaves no run directory behind
            run.remove_if_empty()
        raise
    return prepared.info


def summary_rows(info: dict) -> list[list]:
    events = "intervals" if info["options"].get("labels") == "intervals" else "breaks"
    rows = [["split", "windows", "positive", events, "first end", "last end"]]
    for name, s in info["splits"].items():
        rows.append([name, s["windows"], s["positive"], s["breaks"], s["first_end"], s["last_end"]])
    return rows

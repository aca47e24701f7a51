"""The ``prepare`` step: CSV in, scaled windows per split out.

Order matters and follows the recipe: read, detrend (optional, on the raw rows), shift the
labels ahead and drop the break rows, window, split, then fit the scaler on the last row of
each normal training window and apply it to every window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lstm_rare_event import __version__, log
from lstm_rare_event.run import Writer, read_json, require, sha256_file
from lstm_rare_event.preprocess.csv import DEFAULT_DROP, read_table, sampling_interval
from lstm_rare_event.preprocess.detrend import detrend
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.labels import shift_labels
from lstm_rare_event.scaling import SCALER_JOBLIB, SCALER_NPZ, apply_scaling, fit_scaler, save_scaler
from lstm_rare_event.preprocess.windows import SPLITS, Windows, recipe_window_ends, segments, split_file, stack, window_ends

PREPARE_JSON = "prepare.json"
NAT = np.datetime64("NaT", "s")


@dataclass(frozen=True)
class PrepareOptions:
    """Everything ``prepare`` can be told; the defaults are the tool's, not the recipe's."""

    shift: int = 2
    lookback: int = 5
    drop: tuple[str, ...] = DEFAULT_DROP
    features: tuple[str, ...] | None = None
    allow_gaps: bool = False
    # Chosen by rolling-origin validation on the real data (bench/defaults.md); 0 reproduces the recipe.
    detrend: int = 30
    clip: float = 10.0
    split: str = "time"
    fractions: tuple[float, float, float] | None = None
    seed: int = 123

    def __post_init__(self):
        if self.fractions is None:
            # The recipe's random split is 80/20 twice (64/16/20); by time, 60/20/20.
            default = (0.64, 0.16, 0.2) if self.split == "random" else (0.6, 0.2, 0.2)
            object.__setattr__(self, "fractions", default)
        if self.shift < 0:
            raise UserError(f"--shift must be 0 or more, got {self.shift}")
        if self.lookback < 1:
            raise UserError(f"--lookback must be 1 or more, got {self.lookback}")
        if self.detrend < 0:
            raise UserError(f"--detrend must be 0 (off) or a number of rows, got {self.detrend}")
        if self.clip < 0:
            raise UserError(f"--clip must be 0 (off) or a number of standard deviations, got {self.clip}")
        if self.split not in ("time", "random"):
            raise UserError(f"--split must be 'time' or 'random', got {self.split!r}")
        if len(self.fractions) != 3 or min(self.fractions) <= 0 or abs(sum(self.fractions) - 1) > 1e-6:
            raise UserError(f"--fractions must be three positive numbers adding up to 1, got {self.fractions}")


@dataclass
class Prepared:
    splits: dict[str, Windows]
    scaler: object
    info: dict = field(default_factory=dict)


def split_ends(ends: np.ndarray, n_rows: int, options: PrepareOptions) -> dict[str, np.ndarray]:
    """Window end rows per split."""
    if options.split == "random":
        from sklearn.model_selection import train_test_split

        # The recipe splits twice with one seed: (train+valid) vs test, then train vs valid.
        train_valid, test = train_test_split(ends, test_size=options.fractions[2], random_state=options.seed)
        valid_share = options.fractions[1] / (options.fractions[0] + options.fractions[1])
        train, valid = train_test_split(train_valid, test_size=valid_share, random_state=options.seed)
        return {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}
    cuts = time_cuts(n_rows, options.fractions)
    # A window belongs to the part its first row is in; windows that straddle a cut are dropped,
    # so no row is seen by two splits.
    first = ends - options.lookback + 1
    bounds = [0, *cuts, n_rows]
    return {
        name: ends[(first >= bounds[i]) & (ends < bounds[i + 1])] for i, name in enumerate(SPLITS)
    }


def time_cuts(n_rows: int, fractions) -> list[int]:
    return [int(round(n_rows * fractions[0])), int(round(n_rows * (fractions[0] + fractions[1])))]


def prepare(path, options: PrepareOptions = PrepareOptions()) -> Prepared:
    """Read ``path`` and build scaled windows for train, valid and test (nothing is written)."""
    table = read_table(path, options.features, options.drop, labels="required")
    if len(table) < options.lookback:
        raise UserError(f"{path}: {len(table)} data rows, fewer than one window of --lookback {options.lookback}")
    interval = sampling_interval(table.time)
    values = detrend(table.values, segments(table.time, interval), options.detrend)

    shifted = shift_labels(table.y, options.shift)
    time, values = table.time[shifted.keep], values[shifted.keep]
    event_time = np.where(shifted.event_row >= 0, table.time[np.maximum(shifted.event_row, 0)], NAT)
    if len(time) < options.lookback:
        raise UserError(f"{path}: {len(time)} rows after removing break rows, fewer than one window")

    if options.allow_gaps:
        ends = recipe_window_ends(len(time), options.lookback)
    else:
        ends = window_ends(segments(time, interval), options.lookback)
    parts = split_ends(ends, len(time), options)

    normal_train = parts["train"][shifted.y[parts["train"]] == 0]
    if normal_train.size == 0:
        raise UserError(f"{path}: no normal (y=0) windows in the training split to fit the scaler on")
    scaler = fit_scaler(values[normal_train])
    scaled = apply_scaling(values, scaler.mean_, scaler.scale_, options.clip)
    splits = {
        name: Windows(stack(scaled, idx, options.lookback), shifted.y[idx], time[idx], event_time[idx])
        for name, idx in parts.items()
    }
    for name, windows in splits.items():
        if len(windows) == 0:
            raise UserError(f"{path}: the {name} split has no windows; use more rows or other --fractions")

    breaks = int(table.y.sum())
    if breaks == 0:
        log.warning(f"{path}: no break (y=1) rows; every window is normal")
    info = {
        "package_version": __version__,
        "input": {"path": str(path), "sha256": sha256_file(path), "rows": len(table), "breaks": breaks},
        "options": asdict(options),
        "features": table.features,
        "n_features": len(table.features),
        "lookback": options.lookback,
        "interval_minutes": interval / np.timedelta64(1, "m"),
        "time_gaps": int((np.diff(table.time) > interval).sum()),
        "rows_after_shift": len(time),
        "windows": int(sum(len(w) for w in splits.values())),
        "splits": {name: split_summary(w) for name, w in splits.items()},
    }
    return Prepared(splits, scaler, info)


def split_summary(windows: Windows) -> dict:
    return {
        "windows": len(windows),
        "positive": int(windows.y.sum()),
        "breaks": int(np.unique(windows.event_time[windows.y == 1]).size),
        "first_end": str(windows.end_time.min()),
        "last_end": str(windows.end_time.max()),
    }


def save(prepared: Prepared, out_dir) -> None:
    """Write every split, the scaler and prepare.json; all or nothing."""
    with Writer(out_dir, step="prepare", options=prepared.info["options"]) as out:
        for name, windows in prepared.splits.items():
            windows.save(out.path(split_file(name)))
        save_scaler(prepared.scaler, out.path(SCALER_JOBLIB), out.path(SCALER_NPZ))
        out.json(PREPARE_JSON, prepared.info)


def load_info(run_dir) -> dict:
    require(run_dir, [PREPARE_JSON], "run `lstm-rare-event prepare INPUT --out DIR` first")
    return read_json(Path(run_dir) / PREPARE_JSON)


def summary_rows(info: dict) -> list[list]:
    rows = [["split", "windows", "positive", "breaks", "first end", "last end"]]
    for name, s in info["splits"].items():
        rows.append([name, s["windows"], s["positive"], s["breaks"], s["first_end"], s["last_end"]])
    return rows

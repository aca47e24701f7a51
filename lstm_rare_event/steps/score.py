"""The ``score`` step's pieces: the run loaded once (:class:`Scorer`), the output's columns,
chunked reading and the output checks. The scoring itself, batch and stateful,
is :mod:`lstm_rare_event.steps.stream`.

New rows go through the run's own :class:`Preprocessor` (the same code path as ``prepare``),
the run's detector scores every window, and a window is flagged when its score is above the
saved threshold. Large files are read in chunks; each chunk is scored together with a tail of
raw rows from the one before, long enough for the detrending baselines and the first window,
so every window is scored once, exactly as if the whole file had been read at once.

This runs from cron on every call: NumPy, pandas and our light modules only, never TensorFlow
or scikit-learn (their imports alone cost seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lstm_rare_event.alarms.episodes import DEFAULT_MERGE_MINUTES
from lstm_rare_event.alarms.sensors import TOP_SENSORS
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import pid_alive
from lstm_rare_event.preprocess.preprocessor import Preprocessor
from lstm_rare_event.run import DETECTOR, MANIFEST, PREPROCESSOR, THRESHOLD_JSON, Run

@dataclass(frozen=True)
class Scorer:
    """Everything scoring needs from a run, loaded once."""

    preprocessor: Preprocessor
    detector: object
    threshold: float
    merge_minutes: float = DEFAULT_MERGE_MINUTES
    #: sha256 over the hashes of the preprocessor, detector and threshold files: which run this is
    fingerprint: str = ""
    #: the training data's UTC offset, for figures in the data's own time zone
    utc_offset_seconds: int | None = None


def load_scorer(run_dir, engine: str | None = None, wait: float = 60.0, allow_pickle: bool = False) -> Scorer:
    """The run's preprocessor, detector and threshold, read as one consistent snapshot and
    refused when they do not come from one run."""
    run = Run(run_dir)
    with run.reading(wait):
        run.check("prepare", [PREPROCESSOR])
        run.check("train", [DETECTOR])
        run.check("threshold", [THRESHOLD_JSON])
        threshold = run.threshold()
        merge = DEFAULT_MERGE_MINUTES if threshold.merge_minutes is None else threshold.merge_minutes
        fingerprint = hashlib.sha256(json.dumps(sorted(run.inputs.items())).encode()).hexdigest()
        return Scorer(run.preprocessor(), run.detector(engine=engine, allow_pickle=allow_pickle), threshold.value, merge, fingerprint,
                      run.utc_offset_seconds())


def output_columns(n_features: int, has_contributions: bool = True, held: bool = False) -> list[str]:
    """scores.csv's columns: time, score, flag, episode, opened, held (with --missing hold), then
    the top sensors and their shares for detectors that name sensors."""
    k = min(TOP_SENSORS, n_features) if has_contributions else 0
    return ["time", "score", "flag", "episode", "opened", *(["held"] if held else []),
            *(f"{what}_{i}" for i in range(1, k + 1) for what in ("sensor", "share"))]


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

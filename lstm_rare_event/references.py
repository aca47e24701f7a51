"""Reference detectors without deep learning, scored through the same evaluation as the model.

A model is only worth its cost if it beats simple rules on the same windows, thresholds and
metrics. Two references:

- ``mahalanobis``: how unusual a window's last row is against normal training rows, the
  classical multivariate outlier score (the autoencoder's error scores the same last row).
- ``restart``: how recently the machine restarted after cut-out downtime. It uses no sensor at
  all; breaks tend to follow restarts, so a model that cannot beat it has learnt little more
  than "the machine just came back".

Every score is higher when a break is more likely and never negative, as the threshold rules
expect (they treat 0 as the floor). The detectors are NumPy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstm_rare_event.run import check_run
from lstm_rare_event.errors import UserError
from lstm_rare_event.steps.evaluate import read_interval_minutes, report_from_errors
from lstm_rare_event.steps.prepare import PREPARE_JSON
from lstm_rare_event.preprocess.windows import Windows, load_split, segments, split_file

DETECTORS = ("mahalanobis", "restart")


def fit_mahalanobis(train: Windows) -> tuple[np.ndarray, np.ndarray]:
    """(mean, pseudo-inverse covariance) of the last rows of the normal training windows.

    The pseudo-inverse, because a sensor that is constant in training makes the covariance
    singular; such a direction then adds nothing to the distance instead of failing.
    """
    rows = np.asarray(train.X[train.y == 0, -1, :], dtype=np.float64)
    if len(rows) < 2:
        raise UserError(f"the Mahalanobis reference needs at least 2 normal training windows, got {len(rows)}")
    return rows.mean(axis=0), np.linalg.pinv(np.cov(rows, rowvar=False), hermitian=True)


def mahalanobis_scores(train: Windows, windows: Windows) -> np.ndarray:
    """(N,) squared Mahalanobis distance of each window's last row from the normal training rows."""
    mean, precision = fit_mahalanobis(train)
    centred = np.asarray(windows.X[:, -1, :], dtype=np.float64) - mean
    # Clipped at 0: rounding can leave a distance a hair below it, and scores must not be negative.
    return np.maximum(np.einsum("nf,fg,ng->n", centred, precision, centred), 0.0)


def minutes_since_restart(times: np.ndarray, interval_minutes: float) -> np.ndarray:
    """(T,) minutes from the start of each row's run of gap-free rows to the row.

    ``times`` are ALL rows of the original table, break rows included: downtime is cut out of
    the file, so a step longer than the interval is a stop, and the row after it a restart.
    The first row counts as a restart, since nothing before it is known.
    """
    times = np.asarray(times, dtype="datetime64[s]")
    segment = segments(times, np.timedelta64(round(interval_minutes * 60), "s"))
    start = times[np.searchsorted(segment, segment)]  # segment ids ascend: first row of each
    return (times - start) / np.timedelta64(1, "m")


def at_window_ends(end_time: np.ndarray, row_times: np.ndarray, per_row: np.ndarray) -> np.ndarray:
    """``per_row`` (a value per row of ``row_times``, ascending) at each window's end row."""
    index = np.searchsorted(row_times, end_time)
    found = index < len(row_times)
    found[found] = row_times[index[found]] == end_time[found]
    if not found.all():
        missing = end_time[~found][0]
        raise UserError(f"window end {missing} is not a row time of the table given; "
                        "pass the times of the CSV file the run was prepared from")
    return per_row[index]


def restart_scores(end_time: np.ndarray, row_times: np.ndarray, interval_minutes: float) -> np.ndarray:
    """(N,) 1 / (1 + minutes since the last restart) at each window's end: 1 at a restart,
    falling towards 0, so windows soon after a restart score highest.

    ``row_times`` must be every row time of the original table: the splits hold windows
    scattered over the whole period (the random split shuffles them), so the time since the
    last restart cannot be read off one split's end times.
    """
    row_times = np.asarray(row_times, dtype="datetime64[s]")
    minutes = minutes_since_restart(row_times, interval_minutes)
    return 1.0 / (1.0 + at_window_ends(np.asarray(end_time, dtype="datetime64[s]"), row_times, minutes))


def reference_run(run_dir, detector: str, row_times=None) -> dict:
    """``threshold`` (--rule alarms-per-day --target 1, with the alarm budgets) and ``evaluate``
    for a reference detector on a prepared run, in memory: nothing is written.

    Returns the evaluate.json structure (``threshold``, ``windows``, ``events``,
    ``alarm_budgets``, and ``validation``), ``detector``, and ``test_scores``, the (N,) array
    of test scores for bootstrapping (pop it before writing the rest as JSON).
    ``row_times`` (every row time of the CSV the run was prepared from) is needed by ``restart``.
    """
    if detector not in DETECTORS:
        raise UserError(f"reference detector {detector!r}: choose one of {', '.join(DETECTORS)}")
    run_dir = Path(run_dir)
    check_run(run_dir, {"prepare": [PREPARE_JSON, *(split_file(s) for s in ("train", "valid", "test"))]})
    interval = read_interval_minutes(run_dir)
    valid, test = load_split(run_dir, "valid"), load_split(run_dir, "test")
    if detector == "mahalanobis":
        train = load_split(run_dir, "train")
        valid_scores, test_scores = mahalanobis_scores(train, valid), mahalanobis_scores(train, test)
    else:
        if row_times is None:
            raise UserError("the restart reference needs the row times of the CSV file the run was prepared from")
        valid_scores = restart_scores(valid.end_time, row_times, interval)
        test_scores = restart_scores(test.end_time, row_times, interval)
    report = report_from_errors(valid_scores, valid, test_scores, test, interval)
    return {"detector": detector, **report, "test_scores": test_scores}

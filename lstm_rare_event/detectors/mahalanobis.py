"""The Mahalanobis distance of a window's last row from the normal training rows.

The classical multivariate outlier score, and on the real data's time split a serious rival
of the autoencoder (bench/results.md): any model must beat it to be worth its cost. It scores
the same row that the label belongs to, as the recipe's last-row error does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstm_rare_event.detectors.base import STATE_NPZ, Detector, normal
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import Params
from lstm_rare_event.preprocess.windows import Windows


class MahalanobisDetector(Detector):
    name = "mahalanobis"
    summary = ("squared Mahalanobis distance of each window's last row from the mean of the normal "
               "training rows, under their covariance; no training beyond a mean and a covariance")
    state_arrays = ("mean", "precision")

    def fit_windows(self, train: Windows, valid: Windows | None = None) -> "MahalanobisDetector":
        """Mean and pseudo-inverse covariance of the last rows of the normal training windows.

        The pseudo-inverse, because a sensor that is constant in training makes the covariance
        singular; such a direction then adds nothing to the distance instead of failing.
        """
        rows = np.asarray(normal(train).X[:, -1, :], dtype=np.float64)
        if len(rows) < 2:
            none = " (no windows at all)" if len(train) == 0 else ""
            raise UserError(f"the mahalanobis detector needs at least 2 normal training windows, got {len(rows)}{none}")
        self.n_features_ = rows.shape[1]
        self.mean_ = rows.mean(axis=0)
        self.precision_ = np.linalg.pinv(np.cov(rows, rowvar=False).reshape(self.n_features_, -1), hermitian=True)
        return self

    def explain_windows(self, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
        """The distance, and its exact split over the sensors: c_f * (P c)_f sums to it. A term
        can be negative where correlated sensors explain part of a deviation."""
        self._check_windows(windows)
        centred = np.asarray(windows.X[:, -1, :], dtype=np.float64) - self.mean_
        # Readings far outside the training range overflow to inf; callers refuse non-finite
        # scores with a message, so NumPy's own warning would only be noise.
        with np.errstate(over="ignore", invalid="ignore"):
            # One matrix-vector product per row, not one matrix product for all: a row's rounding
            # then never depends on how many rows are scored at once (scoring one new row in a
            # call gives the bytes that scoring the day in one call gives).
            contributions = centred * (centred[:, None, :] @ self.precision_)[:, 0, :]
            distance = contributions.sum(axis=1)
        # Clipped at 0: rounding can leave a distance a hair below it, and scores must not be negative.
        return np.maximum(distance, 0.0), contributions

    def state(self):
        values, arrays = super().state()
        return values, {**arrays, "mean": self.mean_, "precision": self.precision_}

    def set_state(self, values: Params, arrays, folder) -> None:
        super().set_state(values, arrays, folder)
        n = self.n_features_
        mean, precision = arrays["mean"], arrays["precision"]
        if mean.shape != (n,) or precision.shape != (n, n):
            raise UserError(f"{folder}: the saved mean and precision do not fit {n} features; {values.hint}")
        fault = precision_fault(mean, precision)
        if fault:
            raise UserError(f"{Path(folder) / STATE_NPZ}: the precision matrix {fault}, so distances would be wrong "
                            f"or negative (clipped to 0: never an alarm); {values.hint}")
        self.mean_, self.precision_ = mean, precision


def precision_fault(mean: np.ndarray, precision: np.ndarray) -> str | None:
    """What makes ``precision`` no inverse covariance (None: nothing): a fit makes it finite,
    symmetric and positive semi-definite, up to rounding."""
    if not (np.isfinite(mean).all() and np.isfinite(precision).all()):
        return "or the mean holds values that are not finite"
    scale = float(np.abs(precision).max(initial=0.0))
    tolerance = 1e-8 * max(scale, np.finfo(float).tiny)
    if not np.allclose(precision, precision.T, rtol=0, atol=tolerance):
        return "is not symmetric"
    if len(precision) and np.linalg.eigvalsh(precision)[0] < -1e-6 * scale:
        return "is not positive semi-definite"
    return None

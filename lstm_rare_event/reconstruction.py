"""Reconstruction error: how far the autoencoder's output is from each window.

A window the model has learnt to reproduce (normal operation) comes back close; one that
precedes a break is expected to come back worse. The per-feature errors are kept because
they say which sensors the error comes from (``score`` names the largest shares).

No TensorFlow and no scikit-learn here: ``score`` imports this on every cron call.
"""

from __future__ import annotations

import numpy as np

from lstm_rare_event.detectors.lstm_ae.numpy_engine import load_model
from lstm_rare_event.errors import UserError

# "last" is the recipe: only the last step, the row the label belongs to; "mean" uses all steps.
ERROR_MODES = ("last", "mean")


def feature_errors(X: np.ndarray, X_hat: np.ndarray, mode: str = "last") -> np.ndarray:
    """(N, F) squared errors per feature: at the last time step, or averaged over the steps."""
    if mode not in ERROR_MODES:
        raise UserError(f"error definition {mode!r}: choose one of {', '.join(ERROR_MODES)}")
    X, X_hat = np.asarray(X), np.asarray(X_hat)
    if X.shape != X_hat.shape or X.ndim != 3:
        raise ValueError(f"windows {X.shape} and reconstruction {X_hat.shape} must be the same (N, steps, F)")
    steps = slice(-1, None) if mode == "last" else slice(None)
    # Only the steps used are widened to float64, so the squares of float32 values cannot lose digits.
    diff = X_hat[:, steps].astype(np.float64) - X[:, steps].astype(np.float64)
    return (diff**2).mean(axis=1)


def window_errors(feature_err: np.ndarray) -> np.ndarray:
    """(N,) one error per window: the mean over the features (the recipe's MSE)."""
    return np.asarray(feature_err).mean(axis=1)


def compute_errors(run_dir, windows, mode: str = "last", engine: str = "numpy") -> tuple[np.ndarray, np.ndarray]:
    """(window errors (N,), feature errors (N, F)) of ``windows`` under the model in ``run_dir``."""
    model = load_model(run_dir, engine=engine)
    feature_err = feature_errors(windows.X, model.predict(windows.X), mode)
    if not np.isfinite(feature_err).all():
        # A diverged model returns NaN or inf; every threshold would then be meaningless.
        raise UserError(f"{run_dir}: the model's reconstruction is not finite (NaN or inf); re-run train")
    return window_errors(feature_err), feature_err

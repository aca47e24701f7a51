"""The scaler: fitted on normal training rows only, kept both for scikit-learn and for NumPy.

``scaler.joblib`` is the fitted scikit-learn ``StandardScaler`` for Python users;
``scaler.npz`` holds the same mean and scale so that scoring can run without importing
scikit-learn (which alone costs a cron job more than a second per call).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstm_rare_event.errors import UserError

SCALER_JOBLIB = "scaler.joblib"
SCALER_NPZ = "scaler.npz"


def fit_scaler(rows: np.ndarray):
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit(rows)


def apply_scaling(values: np.ndarray, mean: np.ndarray, scale: np.ndarray, clip: float = 0) -> np.ndarray:
    """Standardize; with ``clip`` > 0, limit to [-clip, clip] standard deviations.

    A few sensors leave their training range by hundreds of standard deviations later in the
    data; unclipped, their squared errors swamp every other sensor's and the early stopping.
    """
    scaled = ((values - mean) / scale).astype(np.float32)
    return np.clip(scaled, -clip, clip, out=scaled) if clip > 0 else scaled


def save_scaler(scaler, joblib_path, npz_path) -> None:
    import joblib

    joblib.dump(scaler, joblib_path)
    with open(npz_path, "wb") as handle:
        np.savez(handle, mean=scaler.mean_, scale=scaler.scale_)


def load_scaler_params(run_dir) -> tuple[np.ndarray, np.ndarray]:
    path = Path(run_dir) / SCALER_NPZ
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["mean"], data["scale"]
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run `lstm-rare-event prepare` first") from None
    except (KeyError, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a scaler written by prepare ({exc})") from None

"""Run a trained autoencoder with Keras, from ``model.keras``: the reference that the NumPy
engine is tested against. Imports TensorFlow, which a scoring host may not have."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstm_rare_event.detectors.lstm_ae.numpy_engine import BATCH, check_input
from lstm_rare_event.errors import UserError

MODEL_KERAS = "model.keras"
TRAIN_EXTRA = "lstm-rare-event[train]"


def import_keras_model(needs: str = "training the lstm detector",
                       instead: str = "use --detector mahalanobis or restart, which need neither"):
    """The Keras side, or one line saying what to install: scoring hosts may go without TensorFlow."""
    try:
        from lstm_rare_event.detectors.lstm_ae import keras_model
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("tensorflow", "keras"):
            raise
        raise UserError(f"{needs} needs TensorFlow and Keras, which are not installed ({exc.name}): "
                        f"pip install '{TRAIN_EXTRA}', or {instead}") from None
    return keras_model


class KerasModel:
    """The trained network evaluated by Keras from ``model.keras`` (imports TensorFlow)."""

    def __init__(self, path):
        keras_model = import_keras_model("--engine keras", "use --engine numpy (the default), which gives the same "
                                                          "scores within 1e-5")
        self.path = Path(path)
        self._model = keras_model.load_keras(self.path)
        _, self.lookback, self.n_features = self._model.input_shape

    def predict(self, X: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
        X = check_input(self.path, self.lookback, self.n_features, X)
        return np.asarray(self._model.predict(X, batch_size=batch_size, verbose=0), dtype=np.float32)

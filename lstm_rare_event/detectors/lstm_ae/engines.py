"""Which engine runs a saved network, and the file each reads: NumPy (``model.npz``, the
default, no TensorFlow) or Keras (``model.keras``, the reference)."""

from __future__ import annotations

from pathlib import Path

from lstm_rare_event.detectors.lstm_ae.keras_engine import MODEL_KERAS, KerasModel
from lstm_rare_event.detectors.lstm_ae.numpy_engine import MODEL_NPZ, NumpyModel
from lstm_rare_event.errors import UserError

MODEL_FILES = {"numpy": MODEL_NPZ, "keras": MODEL_KERAS}
ENGINES = tuple(MODEL_FILES)


def model_file(engine: str) -> str:
    """The file in a run directory that ``engine`` reads the model from."""
    if engine not in MODEL_FILES:
        raise UserError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
    return MODEL_FILES[engine]


def load_model(folder, engine: str = "numpy"):
    """The network saved in ``folder``, with ``.predict(X) -> reconstruction``."""
    path = Path(folder) / model_file(engine)
    return NumpyModel(path) if engine == "numpy" else KerasModel(path)

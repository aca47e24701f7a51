"""Run a trained autoencoder with NumPy alone, from ``model.npz``.

Importing TensorFlow costs seconds, which a cron job would pay on every call, so ``train``
also exports the weights and the architecture to ``model.npz`` and this module evaluates the
network with NumPy alone. The Keras engine (:mod:`.keras_engine`) is the reference this pass is
tested against; :mod:`.engines` chooses between them.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.errors import UserError

MODEL_NPZ = "model.npz"
NPZ_FORMAT = "lstm-rare-event/model-npz/1"
BATCH = 1024  # windows per forward pass: the buffers of a layer stay in the cache


def weight_layout(arch: Architecture) -> list[tuple[str, dict[str, tuple[int, ...]]]]:
    """Every weighted layer's name and its arrays' names and shapes, in Keras' weight order."""
    keys, width = [], arch.n_features
    for prefix, units_list in (("encoder", arch.encoder), ("decoder", arch.decoder)):
        for i, units in enumerate(units_list, 1):
            shapes = {"kernel": (width, 4 * units), "recurrent_kernel": (units, 4 * units), "bias": (4 * units,)}
            keys.append((f"{prefix}_{i}", shapes))
            width = units
    keys.append(("output", {"kernel": (width, arch.n_features), "bias": (arch.n_features,)}))
    return keys


def save_npz(path, arch: Architecture, weights: list[np.ndarray]) -> None:
    """Write ``weights`` (Keras' ``model.get_weights()`` order) and ``arch`` to ``path``."""
    arrays, it = {}, iter(weights)
    for prefix, shapes in weight_layout(arch):
        for name in shapes:
            arrays[f"{prefix}.{name}"] = np.asarray(next(it), dtype=np.float32)
    config = {"format": NPZ_FORMAT, **arch.to_dict()}
    with open(path, "wb") as handle:
        np.savez(handle, config=np.array(json.dumps(config)), **arrays)


def _read_npz(path: Path) -> tuple[Architecture, list[list[np.ndarray]]]:
    """The architecture and, per weighted layer, its arrays; every way to fail is one UserError."""
    if not path.exists():
        raise UserError(f"{path}: not found; re-run train")
    try:
        with np.load(path, allow_pickle=False) as data:
            config = json.loads(str(data["config"]))
            if config.get("format") != NPZ_FORMAT:
                raise ValueError(f"format {config.get('format')!r}, expected {NPZ_FORMAT!r}")
            arch = Architecture.from_dict(config)
            layers = []
            for prefix, shapes in weight_layout(arch):
                arrays = [data[f"{prefix}.{name}"].astype(np.float32) for name in shapes]
                found = tuple(a.shape for a in arrays)
                if found != tuple(shapes.values()):
                    raise ValueError(f"{prefix} weights have shapes {found}, expected {tuple(shapes.values())}")
                for name, array in zip(shapes, arrays):
                    if not np.isfinite(array).all():
                        # Every score would be NaN or inf; a diverged fit or an edited file.
                        raise UserError(f"{path}: {prefix}.{name} holds weights that are not finite (inf or NaN); "
                                        "re-run train")
                layers.append(arrays)
    except UserError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a model.npz written by train ({exc})") from None
    return arch, layers


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    # the tanh form cannot overflow, unlike 1 / (1 + exp(-x)) for large negative x
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    np.add(out, 1.0, out=out)
    return np.multiply(out, 0.5, out=out)


def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.maximum(x, 0, out=out)


def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.tanh(x, out=out)


ACTIVATION_FUNCTIONS = {"relu": relu, "tanh": tanh}


def lstm(x, kernel, recurrent_kernel, bias, activation, return_sequences: bool) -> np.ndarray:
    """A Keras LSTM layer: gates in the order i, f, c, o; sigmoid for the recurrent activation.

    The arithmetic is ``c = sigmoid(f) * c + sigmoid(i) * act(g)``, ``h = sigmoid(o) * act(c)``,
    written into buffers allocated once per layer: the same operations in the same order, so
    the same bits, without a temporary array per operation."""
    n, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    inputs = x @ kernel + bias  # the input part of every step at once
    h = np.zeros((n, units), dtype=x.dtype)
    c = np.zeros((n, units), dtype=x.dtype)
    gate = np.empty((4, n, units), dtype=x.dtype)  # sigmoid(i), sigmoid(f), act(g), sigmoid(o)
    outputs = np.empty((n, steps, units), dtype=x.dtype) if return_sequences else None
    for t in range(steps):
        # Row by row (a stack of 1-row products): a window's rounding is the same however many
        # windows are scored together. The stacked x @ kernel above is row-wise already.
        z = (h[:, None, :] @ recurrent_kernel)[:, 0, :]
        np.add(inputs[:, t], z, out=z)
        for k, function in enumerate((sigmoid, sigmoid, activation, sigmoid)):
            function(z[:, k * units : (k + 1) * units], out=gate[k])
        i, f, g, o = gate
        np.multiply(f, c, out=c)
        np.multiply(i, g, out=g)
        np.add(c, g, out=c)
        h = activation(c)  # a new contiguous array: the next step's product reads it
        np.multiply(o, h, out=h)
        if return_sequences:
            outputs[:, t] = h
    return outputs if return_sequences else h


def forward(arch: Architecture, layers: list[list[np.ndarray]], X: np.ndarray) -> np.ndarray:
    """The autoencoder's reconstruction of ``X`` (N, lookback, F)."""
    act = ACTIVATION_FUNCTIONS[arch.activation]
    n_enc = len(arch.encoder)
    h = X
    for k, weights in enumerate(layers[:n_enc]):
        h = lstm(h, *weights, act, return_sequences=k < n_enc - 1)
    h = np.repeat(h[:, None, :], arch.lookback, axis=1)
    for weights in layers[n_enc:-1]:
        h = lstm(h, *weights, act, return_sequences=True)
    kernel, bias = layers[-1]
    return h @ kernel + bias


def check_input(path: Path, lookback: int, n_features: int, X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or X.shape[1:] != (lookback, n_features):
        raise UserError(
            f"{path}: the model expects windows of {lookback} x {n_features}, got shape {X.shape}; "
            "were the model and the data prepared from the same run?"
        )
    return X


class NumpyModel:
    """The trained network evaluated with NumPy from ``model.npz``."""

    def __init__(self, path):
        self.path = Path(path)
        self.arch, self._layers = _read_npz(self.path)

    @classmethod
    def from_weights(cls, arch: Architecture, weights: list[np.ndarray]) -> "NumpyModel":
        """The network from Keras' ``get_weights()`` list, without a file."""
        model = cls.__new__(cls)
        model.path, model.arch, it = Path("<memory>"), arch, iter(weights)
        model._layers = [[np.asarray(next(it), dtype=np.float32) for _ in shapes] for _, shapes in weight_layout(arch)]
        return model

    @property
    def weights(self) -> list[np.ndarray]:
        """Every array in Keras' ``get_weights()`` order."""
        return [array for layer in self._layers for array in layer]

    def predict(self, X: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
        X = check_input(self.path, self.arch.lookback, self.arch.n_features, X)
        out = np.empty_like(X)
        for start in range(0, len(X), batch_size):
            out[start : start + batch_size] = forward(self.arch, self._layers, X[start : start + batch_size])
        return out


def read_architecture(folder) -> Architecture:
    """The architecture of the network saved in ``folder``, read from model.npz."""
    return _read_npz(Path(folder) / MODEL_NPZ)[0]

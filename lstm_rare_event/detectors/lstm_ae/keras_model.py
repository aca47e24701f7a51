"""The Keras side: build the autoencoder, fit it reproducibly, load a saved one.

Only ``train`` and the reference engine import this module, because importing TensorFlow
takes seconds; everything that can be done without it lives in ``architecture`` and ``engine``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time

import numpy as np

from lstm_rare_event import log
from lstm_rare_event.version import __version__
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.windows import WindowArray, release, stack, window_array

# Batches read between drops of the rows' pages from resident memory: random windows touch a
# page each, so this bounds training's share of rows.npy at about RELEASE_BATCHES x batch x 4 KB.
RELEASE_BATCHES = 32


@contextlib.contextmanager
def _native_stderr_silenced():
    """TensorFlow's C++ side writes start-up notices (oneDNN, no CUDA driver, AVX-512) straight
    to file descriptor 2, some before any log setting is read; users' stderr is for our
    progress lines. Python exceptions still propagate."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# Level 3 also hides native "errors" such as the AVX-512 fallback notice; real failures raise in Python.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
with _native_stderr_silenced():
    import keras
    import tensorflow as tf

    # The device probe and the first kernel print the rest of the notices; get them over with here.
    tf.config.list_physical_devices()
    if "TF_CONFIG" not in os.environ:
        # Not in a cluster's worker: MultiWorkerMirroredStrategy must configure collective ops
        # before the first op starts TensorFlow's runtime (see distributed.make_strategy).
        tf.constant([1]) + 1


def set_seed(seed: int) -> None:
    """Same seed, inputs and machine give the same weights: seed every generator and make
    TensorFlow's kernels deterministic (which also turns XLA off, see Keras' model_supports_jit)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build(arch: Architecture) -> keras.Model:
    """The LSTM autoencoder that ``arch`` describes; layer names match ``architecture.layers``."""
    act = arch.activation
    model = keras.Sequential(name="lstm_autoencoder")
    model.add(keras.Input(shape=(arch.lookback, arch.n_features), name="input"))
    for i, units in enumerate(arch.encoder, 1):
        last = i == len(arch.encoder)
        model.add(keras.layers.LSTM(units, activation=act, return_sequences=not last, name=f"encoder_{i}"))
    model.add(keras.layers.RepeatVector(arch.lookback, name="repeat"))
    for i, units in enumerate(arch.decoder, 1):
        model.add(keras.layers.LSTM(units, activation=act, return_sequences=True, name=f"decoder_{i}"))
    model.add(keras.layers.TimeDistributed(keras.layers.Dense(arch.n_features), name="output"))
    return model


class EpochLog(keras.callbacks.Callback):
    """One progress line per epoch on stderr, and each epoch's duration for the history."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        logs = logs or {}
        log.info(
            "epoch %d/%d  loss %.5f  val_loss %.5f  %.1f s",
            epoch + 1, self.epochs, logs.get("loss", float("nan")), logs.get("val_loss", float("nan")),
            self.seconds[-1],
        )


class StopOnNaN(keras.callbacks.Callback):
    """Stop training at the first batch whose loss is NaN or infinite: a diverged run cannot
    recover. Keras' own TerminateOnNaN prints on stdout, which is for results (even under -q);
    this one logs on stderr, and train then refuses the model in one line."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            log.info("the loss became %s at batch %d; training stopped", float(loss), batch + 1)
            self.model.stop_training = True


def window_dataset(X: WindowArray | np.ndarray, batch_size: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of windows, cut from their (memory-mapped) rows as training reads them: only a
    few batches exist at a time, so the windows never need to fit in memory.

    With ``shuffle_seed``, every pass (epoch) reads the windows in a new order, and the orders
    depend on the seed alone: the same on every run and on every worker of a cluster. The order
    is a NumPy permutation, not ``Dataset.shuffle``, whose buffer would hold every index as a
    tensor of its own."""
    X = window_array(X)
    n, lookback, n_features = X.shape
    passes = itertools.count()

    def batches():
        order = np.arange(n) if shuffle_seed is None else \
            np.random.default_rng([shuffle_seed, next(passes)]).permutation(n)
        for i, start in enumerate(range(0, n, batch_size), 1):
            yield stack(X.rows, X.ends[order[start : start + batch_size]], lookback)
            if i % RELEASE_BATCHES == 0:
                release(X.rows)

    spec = tf.TensorSpec((None, lookback, n_features), tf.float32)
    data = tf.data.Dataset.from_generator(batches, output_signature=spec)
    # Told how many batches a pass holds, Keras counts the steps of an epoch instead of
    # running into the end of the data.
    return data.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size))).prefetch(2)


def fit(model: keras.Model, X_train: WindowArray | np.ndarray, X_valid: WindowArray | np.ndarray, *, epochs: int, batch_size: int,
        learning_rate: float, patience: int, seed: int) -> dict[str, list[float]]:
    """Train to reconstruct the inputs with Adam and MSE; returns per-epoch loss, val_loss, seconds.

    ``patience`` > 0 stops after that many epochs without a better validation loss and restores
    the best epoch's weights; 0 trains all ``epochs`` and keeps the last weights (the recipe).
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    progress = EpochLog(epochs)
    callbacks = [progress, StopOnNaN()]
    if patience > 0:
        stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
        callbacks.append(stopping)

    def pairs(x):  # an autoencoder's target is its input
        return x, x

    history = model.fit(
        window_dataset(X_train, batch_size, shuffle_seed=seed).map(pairs),
        validation_data=window_dataset(X_valid, batch_size).map(pairs), epochs=epochs, callbacks=callbacks,
        shuffle=False, verbose=0,  # the dataset shuffles
    )
    return {"loss": history.history["loss"], "val_loss": history.history["val_loss"], "seconds": progress.seconds}


def load_keras(path) -> keras.Model:
    """A model that ``train`` saved; a missing, corrupt or foreign file is one UserError."""
    if not path.exists():
        raise UserError(f"{path}: not found; re-run train")
    try:
        # Safe mode refuses Lambda layers and other serialized code: a run directory written by
        # someone else must not run code on this host.
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not a Keras model file ({message})") from None
    shape_in, shape_out = tuple(model.input_shape), tuple(model.output_shape)
    if len(shape_in) != 3 or shape_in != shape_out:
        raise UserError(f"{path}: not an autoencoder written by train (input {shape_in}, output {shape_out})")
    return model


def versions() -> dict[str, str]:
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "lstm_rare_event": __version__}

"""The LSTM autoencoder as a detector: Keras fits it, NumPy scores it.

The score of a window is its reconstruction error: a window the network has learnt to
reproduce (normal operation) comes back close; one that precedes a break is expected to
come back worse. The per-sensor squared errors say which sensors an alarm comes from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_rare_event.detectors.base import Detector, normal
from lstm_rare_event.detectors.lstm_ae import numpy_engine, spec
from lstm_rare_event.detectors.lstm_ae.engines import ENGINES, load_model
from lstm_rare_event.detectors.lstm_ae.keras_engine import MODEL_KERAS, import_keras_model
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import Params
from lstm_rare_event.preprocess.windows import Windows

# "last" is the recipe: only the last step, the row the label belongs to; "mean" uses all steps.
ERROR_MODES = ("mean", "last")
DISTRIBUTE = ("none", "mirrored", "multi-worker")  # distributed.STRATEGIES, without importing TensorFlow
_DEFAULT = spec.PRESETS[spec.DEFAULT_PRESET]


@dataclass(frozen=True)
class LstmOptions:
    """The network, its training, and the error that scores a window.

    The training defaults beat the recipe's validation loss in a fraction of its time. On the
    sheet-break data (random split, 2 cores) the recipe (batch 64, lr 1e-4, 200 epochs) ended at
    0.160 after 455 s; batches of 512 run an epoch in about 0.6 s instead of 2.2 s, and lr 3e-3
    makes up for the fewer updates: 0.150 (seed 123) and 0.140 (seed 7) after 100 epochs, about
    60 s. The mean error over the window was chosen on validation periods of the real data.
    """

    preset: str | None = None
    encoder: tuple[int, ...] = _DEFAULT[0]
    decoder: tuple[int, ...] = _DEFAULT[1]
    activation: str = _DEFAULT[2]
    error: str = "mean"
    epochs: int = 100
    batch_size: int = 512
    learning_rate: float = 3e-3
    patience: int = 10
    seed: int = 123
    # tf.distribute: "mirrored" over local devices, "multi-worker" over the cluster in TF_CONFIG
    distribute: str = "none"

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if not (self.learning_rate > 0 and np.isfinite(self.learning_rate)):
            raise UserError(f"--learning-rate must be a positive number, got {self.learning_rate:g}")
        if self.patience < 0:
            raise UserError(f"--patience must be 0 (no early stopping) or more, got {self.patience}")
        if not 0 <= self.seed < 2**32:
            raise UserError(f"--seed must be between 0 and 4294967295, got {self.seed}")
        if self.distribute not in DISTRIBUTE:
            raise UserError(f"--distribute {self.distribute!r}: choose one of {', '.join(DISTRIBUTE)}")
        if self.error not in ERROR_MODES:
            raise UserError(f"--error {self.error!r}: choose one of {', '.join(ERROR_MODES)}")

    @classmethod
    def from_cli(cls, preset=None, encoder=None, decoder=None, activation=None, **rest) -> "LstmOptions":
        """Options from the command line's strings: a preset with explicit layers overriding it."""
        enc, dec, act = spec.resolve(preset, encoder, decoder, activation)
        return cls(preset=preset, encoder=enc, decoder=dec, activation=act, **rest)


ERROR_BLOCK = 1024  # windows per block of feature_errors


def feature_errors(X: np.ndarray, X_hat: np.ndarray, mode: str) -> np.ndarray:
    """(N, F) squared errors per feature: at the last time step, or averaged over the steps."""
    if mode not in ERROR_MODES:
        raise UserError(f"--error {mode!r}: choose one of {', '.join(ERROR_MODES)}")
    X, X_hat = np.asarray(X), np.asarray(X_hat)
    if X.shape != X_hat.shape or X.ndim != 3:
        # Broadcasting would silently score (N, 1, F) against (N, steps, F).
        raise ValueError(f"windows {X.shape} and reconstruction {X_hat.shape} must be the same (N, steps, F)")
    steps = slice(-1, None) if mode == "last" else slice(None)
    out = np.empty((X.shape[0], X.shape[2]), dtype=np.float64)
    # Only the steps used are widened to float64, so the squares of float32 values cannot lose digits;
    # in blocks that stay in cache (each row's arithmetic is the same in any block).
    for start in range(0, len(X), ERROR_BLOCK):
        block = slice(start, start + ERROR_BLOCK)
        diff = np.subtract(X_hat[block, steps], X[block, steps], dtype=np.float64)
        np.square(diff, out=diff)
        out[block] = diff.mean(axis=1)
    return out


class LstmDetector(Detector):
    name = "lstm"
    Options = LstmOptions
    summary = ("LSTM autoencoder trained on normal windows; the score is the reconstruction error "
               "(mean squared error over the sensors, of the whole window or its last row)")
    engines = ENGINES
    warm_starts = True

    def __init__(self, options=None):
        super().__init__(options)
        self.arch_: Architecture | None = None
        self.model_ = None  # .predict(X) -> reconstruction: the NumPy engine, or Keras
        self._keras = None  # the fitted Keras model, saved as model.keras beside model.npz
        self.train_info_: dict = {}
        self._init_weights: list[np.ndarray] | None = None

    def warm_start(self, previous: "LstmDetector") -> "LstmDetector":
        """Fit from ``previous``'s weights: a nightly retrain in seconds. Its network must have
        this detector's layers and features."""
        if not isinstance(previous, LstmDetector) or previous.model_ is None:
            raise UserError("--init-from needs a run whose detector is a trained lstm")
        mine = (self.options.encoder, self.options.decoder, self.options.activation)
        theirs = (previous.arch_.encoder, previous.arch_.decoder, previous.arch_.activation)
        if mine != theirs:
            raise UserError(f"--init-from: that run's network is {spec.spec_text(previous.arch_)}, this one "
                            f"{spec.spec_text(self.architecture(previous.arch_.lookback, previous.arch_.n_features))}")
        self._init_weights = previous.model_.weights
        self._init_arch = previous.arch_
        return self

    def architecture(self, lookback: int, n_features: int) -> Architecture:
        o = self.options
        return Architecture(o.encoder, o.decoder, o.activation, lookback, n_features)

    def fit_windows(self, train: Windows, valid: Windows | None = None) -> "LstmDetector":
        X_train = normal(train).X
        X_valid = normal(valid).X if valid is not None else np.empty((0, *train.X.shape[1:]), np.float32)
        for what, windows, X in (("train", train, X_train), ("validate", valid, X_valid)):
            if windows is None or len(windows) == 0:
                raise UserError(f"no windows to {what} the lstm detector on")
            if len(X) == 0:
                raise UserError(f"no normal (y=0) windows to {what} the lstm detector on")
        arch = self.architecture(X_train.shape[1], X_train.shape[2])
        check_size(arch)
        keras_model = import_keras_model()  # TensorFlow: seconds to import

        o = self.options
        start = time.perf_counter()
        try:
            if o.distribute == "none":
                keras_model.set_seed(o.seed)
                net = keras_model.build(arch)
                self._apply_init(net, arch)
                history = keras_model.fit(net, X_train, X_valid, epochs=o.epochs, batch_size=o.batch_size,
                                          learning_rate=o.learning_rate, patience=o.patience, seed=o.seed)
            else:
                if self._init_weights is not None:
                    raise UserError("--init-from and --distribute cannot be combined yet; train the warm start "
                                    "on one machine")
                from lstm_rare_event.detectors.lstm_ae import distributed

                net, history = distributed.fit_distributed(
                    distributed.make_strategy(o.distribute), arch, X_train, X_valid, epochs=o.epochs,
                    batch_size=o.batch_size, learning_rate=o.learning_rate, patience=o.patience, seed=o.seed)
        except (MemoryError, keras_model.tf.errors.ResourceExhaustedError):
            raise UserError(f"the network is too large for this machine's memory ({spec.count_params(arch):,} "
                            f"parameters, batches of {o.batch_size} windows of {arch.lookback} x "
                            f"{arch.n_features}); use smaller --encoder/--decoder layers or a smaller "
                            "--batch-size") from None
        weights = net.get_weights()
        if not np.isfinite(history["val_loss"]).any() or not all(np.isfinite(w).all() for w in weights):
            raise UserError("training diverged (the loss became NaN or infinite); "
                            "try a lower --learning-rate or --activation tanh")
        self.arch_, self.n_features_, self._keras, self.history_ = arch, arch.n_features, net, history
        self.model_ = numpy_engine.NumpyModel.from_weights(arch, weights)
        self.train_info_ = _training_summary(o, arch, history, len(X_train), len(X_valid),
                                             time.perf_counter() - start, keras_model.versions())
        return self

    def _apply_init(self, net, arch: Architecture) -> None:
        if self._init_weights is None:
            return
        if (self._init_arch.lookback, self._init_arch.n_features) != (arch.lookback, arch.n_features):
            raise UserError(f"--init-from: that run's windows are {self._init_arch.lookback} x "
                            f"{self._init_arch.n_features}, these {arch.lookback} x {arch.n_features}")
        net.set_weights(self._init_weights)

    def is_chief(self) -> bool:
        if self.options.distribute != "multi-worker":
            return True
        from lstm_rare_event.detectors.lstm_ae import distributed

        return distributed.is_chief()

    def explain_windows(self, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
        self._check_windows(windows)
        X = np.asarray(windows.X, dtype=np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            feature_err = feature_errors(X, self.model_.predict(X), self.options.error)
        # NaN is never above a threshold: such a window would silently pass as normal.
        if not np.isfinite(feature_err).all():
            bad = int(np.flatnonzero(~np.isfinite(feature_err).all(axis=1))[0])
            raise UserError(f"the reconstruction error of the window ending {windows.end_time[bad]} is not finite "
                            "(a diverged model, or sensor values far outside the training range)")
        return feature_err.mean(axis=1), feature_err

    def describe(self) -> dict:
        out = super().describe()
        if self.arch_ is not None:
            out["architecture"] = spec.describe(self.arch_)
        return {**out, **self.train_info_}

    def describe_text(self) -> str:
        return spec.format_text(self.arch_)

    def state(self):
        values, arrays = super().state()
        return {**values, "training": self.train_info_}, arrays

    def save(self, folder, allow_pickle: bool = False) -> None:
        folder = Path(folder)
        super().save(folder, allow_pickle)
        numpy_engine.save_npz(folder / numpy_engine.MODEL_NPZ, self.arch_, self.model_.weights)
        if self._keras is not None:
            self._keras.save(folder / MODEL_KERAS)

    def set_state(self, values: Params, arrays, folder) -> None:
        super().set_state(values, arrays, folder)
        self.train_info_ = values.data.get("training") or {}

    @classmethod
    def load(cls, folder, config: Params, **load_options) -> "LstmDetector":
        detector = super().load(folder, config, **load_options)  # options and state; the network follows
        detector.model_ = load_model(folder, detector.engine)
        detector.arch_ = detector.model_.arch if detector.engine == "numpy" else numpy_engine.read_architecture(folder)
        if detector.arch_.n_features != detector.n_features_:
            raise UserError(f"{folder}: model.npz has {detector.arch_.n_features} features, detector.json "
                            f"{detector.n_features_}; {config.hint}")
        return detector


# The recipe's network has about 25,000 parameters and the largest preset fits in megabytes; a
# network of this size is a typing slip (--encoder 100000000), whose weights alone would not fit.
MAX_PARAMS = 50_000_000


def check_size(arch: Architecture) -> None:
    """Refuse an absurdly large network before TensorFlow tries (and fails) to allocate it."""
    params = spec.count_params(arch)
    if params > MAX_PARAMS:
        raise UserError(f"the network would have {params:,} parameters (--encoder {','.join(map(str, arch.encoder))}"
                        f" --decoder {','.join(map(str, arch.decoder))} on {arch.n_features} features), more than "
                        f"{MAX_PARAMS:,}; use smaller layers")


def _training_summary(options: LstmOptions, arch: Architecture, history: dict, n_train: int, n_valid: int,
                      wall_seconds: float, versions: dict) -> dict:
    val_loss = np.asarray(history["val_loss"], dtype=float)
    best = int(np.nanargmin(val_loss)) + 1
    epochs_run = len(val_loss)
    return {
        "params": spec.count_params(arch),
        "normal_windows": {"train": n_train, "valid": n_valid},
        "epochs_run": epochs_run,
        "stopped_early": epochs_run < options.epochs,
        "best_epoch": best,
        "best_val_loss": float(val_loss[best - 1]),
        "final_val_loss": float(val_loss[-1]),
        # early stopping restores the best weights; without it the last epoch's are kept
        "weights_from_epoch": best if options.patience > 0 else epochs_run,
        "wall_seconds": round(wall_seconds, 2),
        "seconds_per_epoch": round(float(np.mean(history["seconds"])), 3),
        "versions": versions,
    }

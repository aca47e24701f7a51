"""The ``train`` step: fit the autoencoder on normal windows and write the model files.

TensorFlow (and pandas, through ``prepare``) are imported only inside :func:`train`, so the
command line can read :class:`TrainOptions`' defaults for free, and bad input fails fast.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lstm_rare_event.alarms import plots
from lstm_rare_event.detectors.lstm_ae import numpy_engine as engine, spec as architecture
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.run import Writer, check_run, read_manifest
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.windows import load_split, split_file

HISTORY_CSV = "history.csv"
TRAIN_JSON = "train.json"
LOSS_PNG = "loss.png"
PREPARE_HINT = "run `lstm-rare-event prepare INPUT --out RUN_DIR` first"


@dataclass(frozen=True)
class TrainOptions:
    """Everything ``train`` can be told.

    The defaults beat the recipe's validation loss in a fraction of its time. On the sheet-break
    data (random split, 2 cores) the recipe (batch 64, lr 1e-4, 200 epochs) ended at 0.160 after
    455 s; batches of 512 run an epoch in about 0.6 s instead of 2.2 s, and lr 3e-3 makes up
    for the fewer updates: 0.150 (seed 123) and 0.140 (seed 7) after 100 epochs, about 60 s.
    lr 1e-3 only reached 0.160 at epoch 100. Early stopping ends runs that stop improving.
    """

    preset: str | None = None
    encoder: tuple[int, ...] = architecture.PRESETS[architecture.DEFAULT_PRESET][0]
    decoder: tuple[int, ...] = architecture.PRESETS[architecture.DEFAULT_PRESET][1]
    activation: str = architecture.PRESETS[architecture.DEFAULT_PRESET][2]
    epochs: int = 100
    batch_size: int = 512
    learning_rate: float = 3e-3
    patience: int = 10
    seed: int = 123

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise UserError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.patience < 0:
            raise UserError(f"--patience must be 0 (no early stopping) or more, got {self.patience}")
        if self.seed < 0:
            raise UserError(f"--seed must be 0 or more, got {self.seed}")

    @classmethod
    def from_cli(cls, preset=None, encoder=None, decoder=None, activation=None, **rest) -> "TrainOptions":
        """Options from the command line's strings: a preset with explicit layers overriding it."""
        enc, dec, act = architecture.resolve(preset, encoder, decoder, activation)
        return cls(preset=preset, encoder=enc, decoder=dec, activation=act, **rest)


def normal_windows(run_dir: Path, split: str, lookback: int, n_features: int) -> np.ndarray:
    """The y=0 windows of one split: the only ones the autoencoder learns from."""
    windows = load_split(run_dir, split)
    path = run_dir / split_file(split)
    if windows.X.ndim != 3 or windows.X.shape[1:] != (lookback, n_features):
        raise UserError(
            f"{path}: windows of shape {windows.X.shape[1:]}, but prepare.json says {lookback} x {n_features}"
        )
    X = windows.X[windows.y == 0]
    if len(X) == 0:
        raise UserError(f"{path}: no normal (y=0) windows to {'train' if split == 'train' else 'validate'} on")
    return X


def branch(run_dir: Path, out: Path) -> None:
    """Give ``out`` a copy of the prepared data, so that later steps run on ``out`` alone.

    Nothing is copied when ``out`` already holds the same files (an earlier ``train --out``).
    """
    source = read_manifest(run_dir)
    names = sorted(name for name, entry in source["files"].items() if entry["step"] == "prepare")
    present = read_manifest(out)["files"]
    if all(present.get(name, {}).get("sha256") == source["files"][name]["sha256"] for name in names):
        return
    if present:
        raise UserError(f"{out}: already holds files from another run; choose a new or empty --out")
    options = source["steps"].get("prepare", {}).get("options", {})
    with Writer(out, step="prepare", options=options) as staged:
        for name in names:
            shutil.copy2(run_dir / name, staged.path(name))


def write_history(path: Path, history: dict) -> None:
    lines = ["epoch,loss,val_loss,seconds"]
    for i, row in enumerate(zip(history["loss"], history["val_loss"], history["seconds"]), 1):
        lines.append(f"{i}," + ",".join(f"{v:.8g}" for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def summarize(options: TrainOptions, arch: Architecture, history: dict, n_train: int, n_valid: int,
              wall_seconds: float, versions: dict) -> dict:
    val_loss = np.asarray(history["val_loss"], dtype=float)
    best = int(np.nanargmin(val_loss)) + 1
    epochs_run = len(val_loss)
    return {
        "options": asdict(options),
        "architecture": arch.to_dict(),
        "params": architecture.count_params(arch),
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


def train(run_dir, options: TrainOptions = TrainOptions(), out=None) -> dict:
    """Train on ``run_dir``'s prepared windows; write the model into ``out`` (default ``run_dir``).

    Returns what ``train.json`` records. Nothing is written unless training completes.
    """
    from lstm_rare_event.steps.prepare import PREPARE_JSON, load_info

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir
    inputs = check_run(run_dir, {"prepare": [split_file("train"), split_file("valid"), PREPARE_JSON]})
    info = load_info(run_dir)
    try:
        lookback, n_features = int(info["lookback"]), len(info["features"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{run_dir / PREPARE_JSON}: no 'lookback' and 'features'; {PREPARE_HINT}") from None
    arch = Architecture(options.encoder, options.decoder, options.activation, lookback, n_features)
    X_train = normal_windows(run_dir, "train", lookback, n_features)
    X_valid = normal_windows(run_dir, "valid", lookback, n_features)
    branched = out.resolve() != run_dir.resolve()
    if branched:
        branch(run_dir, out)

    from lstm_rare_event.detectors.lstm_ae import keras_model  # TensorFlow: seconds to import

    start = time.perf_counter()
    keras_model.set_seed(options.seed)
    net = keras_model.build(arch)
    history = keras_model.fit(
        net, X_train, X_valid, epochs=options.epochs, batch_size=options.batch_size,
        learning_rate=options.learning_rate, patience=options.patience,
    )
    weights = net.get_weights()
    if not np.isfinite(history["val_loss"]).any() or not all(np.isfinite(w).all() for w in weights):
        raise UserError(
            f"training on {run_dir} diverged (the loss became NaN or infinite); "
            "try a lower --learning-rate or --activation tanh"
        )
    summary = summarize(options, arch, history, len(X_train), len(X_valid),
                        time.perf_counter() - start, keras_model.versions())
    if branched:
        summary["prepared_in"] = str(run_dir)

    with Writer(out, step="train", inputs=inputs, options=asdict(options)) as staged:
        net.save(staged.path(engine.MODEL_KERAS))
        engine.save_npz(staged.path(engine.MODEL_NPZ), arch, weights)
        write_history(staged.path(HISTORY_CSV), history)
        staged.json(TRAIN_JSON, summary)
        plots.loss_curve(history, staged.path(LOSS_PNG), best_epoch=summary["best_epoch"],
                         title=f"{out.name}: {architecture.spec_text(arch)}")
    return summary

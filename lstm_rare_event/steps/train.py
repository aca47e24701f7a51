"""The ``train`` step: fit a detector on the prepared windows and save it in the run.

TensorFlow is imported only when the autoencoder fits, so the command line can read every
detector's defaults for free, and bad input fails fast.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lstm_rare_event import detectors, log
from lstm_rare_event.version import __version__
from lstm_rare_event.alarms import plots
from lstm_rare_event.errors import UserError
from lstm_rare_event.run import (
    DEFAULT_WAIT, DETECTOR, HISTORY_CSV, LOSS_PNG, PREPROCESSOR, TRAIN_JSON, Run, split_files,
)


def write_history(path: Path, history: dict) -> None:
    lines = ["epoch,loss,val_loss,seconds"]
    for i, row in enumerate(zip(history["loss"], history["val_loss"], history["seconds"]), 1):
        lines.append(f"{i}," + ",".join(f"{v:.8g}" for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def branch(source: Run, target: Run) -> None:
    """Give ``target`` a copy of the prepared data, so later steps run on it alone. Nothing is
    copied when it holds the same files already (an earlier ``train --out``)."""
    names = source.check("prepare")
    present = target.manifest()["files"]
    wanted = {name: source.manifest()["files"][name]["sha256"] for name in names}
    if all(present.get(name, {}).get("sha256") == digest for name, digest in wanted.items()):
        return
    if present:
        raise UserError(f"{target.path}: already holds files from another run; choose a new or empty --out")
    options = source.manifest()["steps"]["prepare"].get("options", {})
    with target.writer("prepare", options, inputs={}) as staged:
        for name in names:
            staged.path(name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source.path / name, staged.path(name))


def _unlabelled_if_all_anomalous(run: Run, train_w, valid_w):
    """With interval labels, a fitting split whose windows all lie in anomaly intervals (an
    anomaly that reaches into SKAB's first 400 rows) is fitted on as it is, labels unused, with a
    warning; with events, the detectors' refusal stands (the labels were shifted to be learnt from)."""
    if run.preprocessor().options.labels != "intervals":
        return train_w, valid_w
    out = []
    for name, windows in (("train", train_w), ("valid", valid_w)):
        if len(windows) and not (windows.y == 0).any():
            log.warning(f"{run.path}: every {name} window lies in a labelled anomaly interval; the detector "
                        f"fits on them as they are (labels unused), so it may learn the anomaly as normal")
            windows = replace(windows, y=np.zeros_like(windows.y))
        out.append(windows)
    return tuple(out)


def _fit(model, detector: str, run: Run, train_w, valid_w) -> dict:
    train_w, valid_w = _unlabelled_if_all_anomalous(run, train_w, valid_w)
    log.info(f"fitting the {detector} detector on {int((train_w.y == 0).sum()):,} normal training windows")
    start = time.perf_counter()
    try:
        model.fit(train_w, valid_w)
    except UserError as exc:
        raise UserError(f"{run.path}: {exc}") from None
    return {
        "package_version": __version__,
        "detector": model.describe(),
        "fit_seconds": round(time.perf_counter() - start, 2),
        "windows": {"train": len(train_w), "valid": len(valid_w)},
    }


def _same_features(earlier: Run, target: Run) -> None:
    """--init-from needs the same sensors in the same order, not just as many."""
    with earlier.reading():
        theirs = earlier.preprocessor().features_
    mine = target.preprocessor().features_
    if theirs != mine:
        differ = sorted(set(theirs) ^ set(mine)) or ["the order"]
        raise UserError(f"--init-from {earlier.path}: its features differ from {target.path}'s "
                        f"({', '.join(differ[:5])}); prepare both from files with the same sensors")


def _trained(run_dir, wait: float):
    """The detector of an earlier run, for a warm start."""
    earlier = Run(run_dir)
    with earlier.reading(wait):
        return earlier.detector()


def train(run_dir, detector: str = detectors.DEFAULT, params: dict | None = None, out=None,
          wait: float = DEFAULT_WAIT, init_from=None, allow_pickle: bool = False) -> dict:
    """Fit ``detector`` (with ``params``) on ``run_dir``'s prepared windows; write it into ``out``
    (default ``run_dir``). Returns what ``train.json`` records. Nothing is written unless
    fitting completes. ``allow_pickle``: save a plug-in detector, whose fitted state only pickle
    can hold."""
    model = detectors.create(detector, **(params or {}))  # bad options fail before any work
    model.check_save(allow_pickle)
    if init_from is not None:
        model.warm_start(_trained(init_from, wait))
    source = Run(run_dir)
    target = Run(out) if out is not None and Path(out).resolve() != source.path.resolve() else source
    if not model.is_chief():
        # A worker of a training cluster: it trains alongside the chief and writes nothing.
        with source.reading(wait):
            source.check("prepare", split_files("train", "valid"))
            train_w, valid_w = source.split("train"), source.split("valid")
        return _fit(model, detector, source, train_w, valid_w)
    with target.locked(wait, create=target is not source):
        if target is not source:
            with source.reading(wait):
                branch(source, target)
        names = target.check("prepare", [*split_files("train", "valid"), PREPROCESSOR])
        if init_from is not None:
            _same_features(Run(init_from), target)
        train_w, valid_w = target.split("train"), target.split("valid")
        summary = _fit(model, detector, target, train_w, valid_w)
        if target is not source:
            summary["prepared_in"] = str(source.path)
        inputs = {name: target.inputs[name] for name in names}
        with target.writer("train", {"detector": detector, **model.describe()["options"]}, inputs) as staged:
            model.save(staged.path(DETECTOR), allow_pickle)
            staged.json(TRAIN_JSON, summary)
            if model.history_ is not None:
                write_history(staged.path(HISTORY_CSV), model.history_)
                plots.loss_curve(model.history_, staged.path(LOSS_PNG),
                                 best_epoch=summary["detector"].get("best_epoch"),
                                 title=f"{target.path.name}: {detector}")
    return summary


def summary_rows(summary: dict, run_dir) -> list[list]:
    d = summary["detector"]
    rows = [["detector", d["detector"]], ["saved in", f"{run_dir}/{DETECTOR}/"]]
    if "epochs_run" in d:
        stop = "stopped early" if d["stopped_early"] else "all epochs"
        rows += [
            ["parameters", d["params"]],
            ["epochs run", f"{d['epochs_run']} ({stop}; weights of epoch {d['weights_from_epoch']})"],
            ["best val_loss", f"{d['best_val_loss']:.5g} (epoch {d['best_epoch']})"],
            ["wall time", f"{d['wall_seconds']:.1f} s ({d['seconds_per_epoch']:.2f} s per epoch)"],
        ]
    else:
        rows.append(["fit time", f"{summary['fit_seconds']:.2f} s"])
    return rows

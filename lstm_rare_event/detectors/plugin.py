"""Any outside anomaly detector as a detector: ``--detector package.module:Class`` (a PyOD model,
a scikit-learn outlier detector, your own class), or the class or an instance in Python.

The class needs ``fit(X)`` and ``score_samples(X)`` or ``decision_function(X)``. It is fed the
normal training windows as ``plugin_input`` says: ``last`` (default), each window's last row,
(N, sensors), the row the label belongs to, as the Mahalanobis and PCA detectors score it and as
row-wise models (most of PyOD and scikit-learn) expect; ``flat``, each window flattened to
(N, lookback x sensors); ``windows``, the (N, lookback, sensors) windows themselves.

Scores are made "higher = more anomalous" and non-negative, as the threshold rules expect:

- ``score_samples`` is scikit-learn's: higher is more normal, so it is negated. It is used when
  the class has it (scikit-learn's IsolationForest, LocalOutlierFactor(novelty=True),
  OneClassSVM, EllipticEnvelope; their ``decision_function`` is the same score shifted);
- otherwise ``decision_function`` is PyOD's: higher is more anomalous, taken as it is;
- then shifted by the training rows' minimum (score - min over training), clipped at 0: 0 is
  the most normal training row, and a row more normal than any of them scores 0.

A row's score is whatever the class makes it: a model whose score of a row depends on the other
rows scored with it (PyOD's ECOD re-estimates its distributions with them) scores a row streamed
alone (``score --state``) differently from the same row in a batch. The fit is as repeatable as
the class (pass a seed in ``plugin_params``, e.g. ``{"random_state": 0}``). A plug-in names no
sensors.

Saving: the fitted state of an outside class can only be saved with pickle, and loading a pickle
runs code, so saving needs ``allow_pickle`` (``train --allow-pickle``) and so does every load
(``threshold``, ``evaluate``, ``score``, ``compare``, ``inspect``, ``report --allow-pickle``). The import path
and constructor parameters are in ``detector.json`` beside ``model.pkl``. ``backtest`` saves no
plug-in (it refits every fold) and needs no flag.
"""

from __future__ import annotations

import importlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_rare_event.detectors.base import Detector, normal
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import Params
from lstm_rare_event.preprocess.windows import Windows

INPUTS = ("last", "flat", "windows")
MODEL_PICKLE = "model.pkl"
SCORE_METHODS = ("score_samples", "decision_function")  # in order of preference
PICKLE_FLAG = "--allow-pickle"


@dataclass(frozen=True)
class PluginOptions:
    #: the class's constructor arguments, a JSON object (e.g. '{"n_estimators": 50, "random_state": 0}')
    plugin_params: str = "{}"
    #: what a window is to the class: its last row, the window flattened, or the window
    plugin_input: str = "last"

    def __post_init__(self):
        if self.plugin_input not in INPUTS:
            raise UserError(f"--plugin-input {self.plugin_input!r}: choose one of {', '.join(INPUTS)}")
        self.params()

    def params(self) -> dict:
        try:
            params = json.loads(self.plugin_params)
        except json.JSONDecodeError as exc:
            raise UserError(f"--plugin-params {self.plugin_params!r}: not valid JSON ({exc})") from None
        if not isinstance(params, dict):
            raise UserError(f"--plugin-params {self.plugin_params!r}: expected a JSON object such as "
                            '\'{"n_estimators": 50}\'')
        return params


def import_target(target: str) -> type:
    """The class at ``package.module:Class``, or one line saying why it cannot be had."""
    module_name, _, qualname = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"--detector {target}: cannot import {module_name} ({exc}); install the package "
                        "(PyOD: pip install 'lstm-rare-event[pyod]')") from None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UserError(f"--detector {target}: {module_name} has no {qualname}")
    check_estimator_class(obj, target)
    return obj


def check_estimator_class(cls, target: str) -> None:
    if not isinstance(cls, type):
        raise UserError(f"--detector {target}: not a class")
    if not callable(getattr(cls, "fit", None)) or not any(callable(getattr(cls, m, None)) for m in SCORE_METHODS):
        raise UserError(f"--detector {target}: a plug-in needs fit and score_samples or decision_function")


def target_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class PluginDetector(Detector):
    name = "plug-in"  # an instance's name is its class's import path
    Options = PluginOptions
    summary = ("an outside detector (fit and score_samples or decision_function) on each window's last row, "
               "flattened window or window; score made higher = more anomalous and shifted by the training minimum")
    names_sensors = False
    engines = ("python",)
    saves_with_pickle = True

    def __init__(self, options=None, estimator=None, name: str | None = None):
        super().__init__(options)
        self.estimator_ = estimator
        if estimator is not None:
            self.name = name or target_of(type(estimator))
        #: the scoring method used, and its sign: -1 for scikit-learn's score_samples
        self.method_: str | None = None
        self.offset_: float | None = None

    # -- building ------------------------------------------------------------------------
    @classmethod
    def build(cls, name: str, options: PluginOptions) -> "PluginDetector":
        """A plug-in of the class at ``name`` (``package.module:Class``) built with ``options``."""
        return cls(options, construct(import_target(name), options.params(), name), name)

    @classmethod
    def wrap(cls, estimator) -> "PluginDetector":
        """A plug-in around a class or an (unfitted) instance given in Python."""
        if isinstance(estimator, type):
            check_estimator_class(estimator, target_of(estimator))
            return cls(PluginOptions(), construct(estimator, {}, target_of(estimator)))
        check_estimator_class(type(estimator), target_of(type(estimator)))
        params = estimator.get_params(deep=False) if callable(getattr(estimator, "get_params", None)) else {}
        try:
            text = json.dumps(params, sort_keys=True)
        except TypeError:  # parameters that are objects: the instance itself is what is fitted
            text = "{}"
        return cls(PluginOptions(plugin_params=text), estimator)

    # -- the protocol --------------------------------------------------------------------
    def _inputs(self, windows: Windows) -> np.ndarray:
        how = self.options.plugin_input
        if how == "last":
            return np.asarray(windows.X[:, -1, :], dtype=np.float64)
        X = np.asarray(windows.X, dtype=np.float64)
        return X.reshape(len(X), -1) if how == "flat" else X

    def _raw(self, inputs: np.ndarray) -> np.ndarray:
        method = self.method_ or next(m for m in SCORE_METHODS if callable(getattr(self.estimator_, m, None)))
        try:
            raw = np.asarray(getattr(self.estimator_, method)(inputs), dtype=np.float64).reshape(-1)
        except (ValueError, TypeError) as exc:
            raise UserError(f"the plug-in {self.name} could not score: {exc}") from None
        self.method_ = method
        return -raw if method == "score_samples" else raw

    def fit_windows(self, train: Windows, valid: Windows | None = None) -> "PluginDetector":
        inputs = self._inputs(normal(train))
        if len(inputs) < 2:
            raise UserError(f"the plug-in {self.name} needs at least 2 normal training windows, got {len(inputs)}")
        try:
            self.estimator_.fit(inputs)
        except (ValueError, TypeError) as exc:
            raise UserError(f"the plug-in {self.name} could not fit: {exc}") from None
        self.n_features_ = train.X.shape[2]
        raw = self._raw(inputs)
        if not np.isfinite(raw).all():
            raise UserError(f"the plug-in {self.name} gave training windows scores that are not finite")
        self.offset_ = float(-raw.min())
        return self

    def explain_windows(self, windows: Windows) -> tuple[np.ndarray, None]:
        self._check_windows(windows)
        if len(windows) == 0:
            return np.zeros(0), None
        scores = self._raw(self._inputs(windows)) + self.offset_
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise UserError(f"the plug-in {self.name} scored the window ending {windows.end_time[bad]} as not finite")
        return np.maximum(scores, 0.0), None

    def describe(self) -> dict:
        return {**super().describe(), "plugin": {"class": self.name, "method": self.method_, "offset": self.offset_}}

    # -- persistence ---------------------------------------------------------------------
    def state(self):
        values, arrays = super().state()
        return {**values, "class": self.name, "method": self.method_, "offset": self.offset_}, arrays

    def save(self, folder, allow_pickle: bool = False) -> None:
        super().save(folder, allow_pickle)
        with open(Path(folder) / MODEL_PICKLE, "wb") as handle:
            pickle.dump(self.estimator_, handle, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, folder, config: Params, **load_options) -> "PluginDetector":
        if not load_options.get("allow_pickle"):
            raise UserError(f"{folder}: the detector is the plug-in {config.data.get('detector')}, saved with "
                            f"pickle, and loading it runs code: pass {PICKLE_FLAG} if you trust this run")
        return super().load(folder, config, **load_options)

    def set_state(self, values: Params, arrays, folder) -> None:
        super().set_state(values, arrays, folder)
        self.name = values.text("class")
        self.method_ = values.text("method", SCORE_METHODS)
        self.offset_ = values.number("offset")
        path = Path(folder) / MODEL_PICKLE
        try:
            with open(path, "rb") as handle:
                self.estimator_ = pickle.load(handle)
        except FileNotFoundError:
            raise UserError(f"{path}: not found; {values.hint}") from None
        except (pickle.UnpicklingError, EOFError, ImportError, AttributeError) as exc:
            raise UserError(f"{path}: cannot be loaded ({exc}); {values.hint}") from None


def construct(cls: type, params: dict, target: str):
    try:
        return cls(**params)
    except TypeError as exc:
        raise UserError(f"--plugin-params: {target} does not take them ({exc})") from None

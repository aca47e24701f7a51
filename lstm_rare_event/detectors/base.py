"""What every detector is: fit on windows, score windows, name the sensors behind a score,
save to and load from a folder (JSON and npz, never pickle; only a plug-in's outside state needs
pickle, and only with the user's permission, ``allow_pickle``).

What a detector can do beyond that is declared on its class, so that the steps ask the
detector instead of testing its name: ``names_sensors`` (its scores split over the sensors),
``engines`` (what can compute its saved scores, the default first: ``load(engine=...)``) and
``warm_starts`` (a fit can start from an earlier fit's state).

In the spirit of scikit-learn estimators and PyOD detectors: configuration (an options
dataclass, given at construction) stays apart from fitted state (attributes ending in ``_``).
Scores are higher where a break is more likely and never negative, as the threshold rules
expect (they treat 0 as the floor).

``fit``, ``score``, ``score_samples`` and ``explain`` take the steps' :class:`Windows` record or,
scikit-learn style, a 3-D array of windows (N, lookback, features), or a 2-D array or a
DataFrame of rows (N, features), each row a window of lookback 1 (one score per row); every
window given as an array counts as normal (y = 0). Subclasses implement ``fit_windows`` and
``explain_windows`` on :class:`Windows`.
"""

from __future__ import annotations

import textwrap
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np

from lstm_rare_event.errors import UserError
from lstm_rare_event.files import Params, dumps, load_npz, save_npz, write_json
from lstm_rare_event.preprocess.windows import WindowArray, Windows

FORMAT = "lstm-rare-event/detector/1"
CONFIG_JSON = "detector.json"
STATE_NPZ = "state.npz"
SCORE_BATCH = 65_536  # windows cut at a time: 77 MB for 5 x 59 float32 windows
#: load options every detector accepts: permissions, which a detector that needs none ignores
PERMISSIONS = ("allow_pickle",)


@dataclass(frozen=True)
class NoOptions:
    """A detector without parameters."""


class Detector(ABC):
    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    #: one sentence for ``inspect`` and the README: what the score is
    summary: ClassVar[str]
    #: whether :meth:`explain` splits each score over the sensors (an alarm then names them)
    names_sensors: ClassVar[bool] = True
    #: what can compute the saved detector's scores, the default first; the built-in detectors
    #: score with NumPy alone, and the autoencoder with Keras too
    engines: ClassVar[tuple[str, ...]] = ("numpy",)
    #: whether :meth:`warm_start` carries an earlier fit into the next (a network's weights)
    warm_starts: ClassVar[bool] = False
    #: whether saving needs pickle (a plug-in's fitted state): then only with ``allow_pickle``
    saves_with_pickle: ClassVar[bool] = False

    @classmethod
    def build(cls, name: str, options) -> "Detector":
        """The detector the registry makes for ``name`` (a plug-in: the class that ``name`` imports)."""
        return cls(options)

    def __init__(self, options=None):
        self.options = options if options is not None else self.Options()
        #: the engine computing the scores (one of ``engines``)
        self.engine = self.engines[0]
        self.n_features_: int | None = None
        #: per-epoch losses for detectors that train iteratively, else None
        self.history_: dict | None = None

    # -- the protocol ------------------------------------------------------------------
    @abstractmethod
    def fit_windows(self, train: Windows, valid: Windows | None = None) -> "Detector":
        """Fit on the normal windows of ``train`` (``valid``'s for early stopping, where used)."""

    @abstractmethod
    def explain_windows(self, windows: Windows) -> tuple[np.ndarray, np.ndarray | None]:
        """(scores (N,), per-feature contributions (N, F) or None when the score has none)."""

    def fit(self, X, valid=None) -> "Detector":
        """Fit on ``X`` (windows, an array or a DataFrame: see the module's docstring);
        ``valid``: windows for early stopping, where the detector uses them."""
        return self.fit_windows(as_windows(X, "X"), None if valid is None else as_windows(valid, "valid"))

    def explain(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        """(scores (N,), per-feature contributions (N, F) or None when the score has none)."""
        return self.explain_windows(as_windows(X, "X"))

    def score(self, X) -> np.ndarray:
        """Scores of ``X``, cut and scored a batch at a time: a split of millions of windows is
        never held whole (a window's score does not depend on its batch)."""
        windows = as_windows(X, "X")
        parts = [self.explain_windows(batch)[0] for batch in windows.batches(SCORE_BATCH)]
        return np.concatenate(parts) if parts else self.explain_windows(windows)[0]

    def score_samples(self, X) -> np.ndarray:
        """:meth:`score` under scikit-learn's name. Unlike scikit-learn's ``score_samples``
        (higher is more normal), higher is more anomalous, as PyOD's ``decision_function``."""
        return self.score(X)

    def warm_start(self, previous: "Detector") -> "Detector":
        """Start the next :meth:`fit` from ``previous``'s fitted state: only for detectors that
        ``warm_starts``; any other refuses, as a closed-form fit has nothing to start from."""
        raise UserError(f"the {self.name} detector cannot start from an earlier fit (--init-from, --warm-start); "
                        "its fit is the same without one")

    def is_chief(self) -> bool:
        """Whether this process writes the results: only one worker of a training cluster does."""
        return True

    def describe(self) -> dict:
        """What the fitted detector is, as JSON-ready data (train.json, inspect)."""
        return {"detector": self.name, "summary": self.summary, "options": asdict(self.options)}

    def describe_text(self) -> str:
        """What the fitted detector is, for a reader (``inspect``)."""
        options = dumps(self.describe()["options"]).strip()
        text = textwrap.fill(f"{self.name} detector: {self.summary}.", width=90)
        return text + ("" if options == "{}" else f"\noptions: {options}")

    # -- persistence -------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Fitted state as (JSON-ready values, arrays); subclasses add theirs."""
        return {"n_features": self.n_features_}, {}

    def set_state(self, values: Params, arrays: dict[str, np.ndarray], folder: Path) -> None:
        self.n_features_ = values.integer("n_features", lambda v: v > 0, "a positive integer")

    state_arrays: ClassVar[tuple[str, ...]] = ()

    def check_save(self, allow_pickle: bool = False) -> None:
        """Refuse, before any work, a save that would need pickle without the permission."""
        if self.saves_with_pickle and not allow_pickle:
            raise UserError(f"the {self.name} detector can only be saved with pickle, and loading a pickle runs "
                            "code: pass --allow-pickle to save it (and to every step that loads it)")

    def save(self, folder, allow_pickle: bool = False) -> None:
        """Write the detector into ``folder``; ``allow_pickle``: a permission that only a detector
        that ``saves_with_pickle`` needs."""
        self.check_save(allow_pickle)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        values, arrays = self.state()
        write_json(folder / CONFIG_JSON, {"format": FORMAT, "detector": self.name,
                                          "options": asdict(self.options), "state": values})
        if arrays:
            save_npz(folder / STATE_NPZ, **arrays)

    @classmethod
    def load(cls, folder, config: Params, **load_options) -> "Detector":
        """The detector saved in ``folder``. ``load_options``: ``engine`` (one of ``engines``;
        None or left out: the first) and the permissions every detector takes (``allow_pickle``);
        any other option is refused."""
        folder = Path(folder)
        engine = cls.check_load_options(load_options)
        detector = cls(options_from_json(cls.Options, config.mapping("options")))
        detector.engine = engine
        arrays = load_npz(folder / STATE_NPZ, cls.state_arrays, f"the state of a {cls.name} detector") \
            if cls.state_arrays else {}
        detector.set_state(config.mapping("state"), arrays, folder)
        return detector

    @classmethod
    def check_load_options(cls, load_options: dict) -> str:
        """The engine that ``load_options`` choose; one line for an option this detector does
        not take."""
        known = ("engine", *PERMISSIONS)
        unknown = [key for key in load_options if key not in known]
        if unknown:
            raise UserError(f"the load option {unknown[0]!r} does not apply to the {cls.name} detector "
                            f"(it takes {', '.join(known)})")
        engine = load_options.get("engine") or cls.engines[0]
        if engine not in cls.engines:
            raise UserError(f"--engine {engine}: the {cls.name} detector runs on {' or '.join(cls.engines)} only")
        return engine

    # -- helpers for subclasses --------------------------------------------------------
    def _check_windows(self, windows: Windows) -> None:
        X = windows.X
        if X.ndim != 3 or (self.n_features_ is not None and X.shape[2] != self.n_features_):
            raise UserError(f"the {self.name} detector was fitted on {self.n_features_} features, "
                            f"got windows of shape {tuple(X.shape[1:])}; were they prepared by the same run?")


def as_windows(X, what: str = "X") -> Windows:
    """``X`` as a :class:`Windows` record: as it is when it is one; a 3-D array as windows; a 2-D
    array or a DataFrame (numeric columns only) as windows of one row each. Windows made from
    an array are all normal (y = 0) and have no times (NaT)."""
    if isinstance(X, Windows):
        return X
    if isinstance(X, WindowArray):
        windows = X
    else:
        if hasattr(X, "columns") and hasattr(X, "dtypes"):  # a DataFrame: pandas is imported already
            from pandas.api.types import is_bool_dtype, is_numeric_dtype

            bad = [str(c) for c, t in X.dtypes.items() if not (is_numeric_dtype(t) or is_bool_dtype(t))]
            if bad:
                raise UserError(f"{what}: column {bad[0]!r} is not numeric; give the sensor columns only")
        try:
            windows = np.asarray(X, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{what}: not an array of numbers ({exc})") from None
        if windows.ndim == 2:
            windows = windows[:, None, :]
        if windows.ndim != 3:
            raise UserError(f"{what}: expected rows (a DataFrame or a 2-D array) or windows (a 3-D array of "
                            f"N x lookback x features), got {windows.ndim} dimension(s)")
        finite = np.isfinite(windows).all(axis=(1, 2))
        if not finite.all():
            raise UserError(f"{what}: row {int(np.flatnonzero(~finite)[0])} has a missing or infinite value")
    n = len(windows)
    nat = np.full(n, np.datetime64("NaT", "s"))
    return Windows(windows, np.zeros(n, dtype=np.int8), nat, nat, nat)


def normal(windows: Windows) -> Windows:
    return windows.subset(windows.y == 0)


def options_from_json(cls, params: Params):
    """An options dataclass from saved JSON, each field checked against its default's type."""
    values = {}
    for f in fields(cls):
        default = f.default
        if isinstance(default, bool):
            values[f.name] = params.get(f.name, bool, "true or false")
        elif isinstance(default, int):
            values[f.name] = params.integer(f.name)
        elif isinstance(default, float):
            values[f.name] = params.number(f.name)
        elif isinstance(default, tuple):
            values[f.name] = tuple(params.get(f.name, list, "a list"))
        else:
            values[f.name] = params.data.get(f.name, default)
    try:
        return cls(**values)
    except UserError as exc:
        raise UserError(f"{params.source}: {exc}; {params.hint}") from None

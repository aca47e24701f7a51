"""The Python API: a fitted pipeline (preprocessor + detector + alarm rule), saved to and loaded
from a run directory that the command line reads too.

>>> pipe = Pipeline(detector="mahalanobis", lookback=5, detrend=30).fit(frame)
>>> scores = pipe.score(new_frame)  # time, score, flag, episode, opened, sensor_1, share_1, ...
>>> pipe.save("run"); pipe = Pipeline.load("run")

It prepares, trains and thresholds as ``prepare``, ``train`` and ``threshold`` do (the
threshold on the validation part of the frame, or on a frame passed in), and scores through the
streaming engine of ``score`` (:mod:`lstm_rare_event.scoring.engine`): a frame is written as CSV
text and read as ``score`` reads a file, so the scores are those of the command line. ``backtest``
fits each fold with :meth:`Pipeline.fit_rows` and scores it with :meth:`Pipeline.score_table`.

Importing this module imports neither TensorFlow nor scikit-learn.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING

import numpy as np

from lstm_rare_event import detectors
from lstm_rare_event.alarms import evaluation, thresholds
from lstm_rare_event.alarms.rule import AlarmRule, smoothing
from lstm_rare_event.alarms.thresholds import ThresholdOptions
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.csv import LABEL, Buffer, Table, read_table
from lstm_rare_event.preprocess.preprocessor import PreprocessOptions, Preprocessor
from lstm_rare_event.preprocess.split import PrepareOptions, split_ends
from lstm_rare_event.run import DEFAULT_WAIT, DETECTOR, PREPARE_JSON, PREPROCESSOR, THRESHOLD_JSON, TRAIN_JSON, Run
from lstm_rare_event.scoring.engine import Carry, ScoreOptions, Scorer, Stream, feed_file, load_scorer, seed
from lstm_rare_event.version import __version__

# pandas (a quarter of a second to import) is imported by the functions that use it: the
# command line imports this module on every call, a score of a few plain rows included.
if TYPE_CHECKING:
    import pandas as pd


class Pipeline:
    """Preprocessor + detector + alarm rule. The parameters are those of ``prepare`` (lookback,
    shift, detrend, ...), ``train`` (``detector`` and its ``params``) and ``threshold`` (``rule``
    with ``rule_params``, ``merge``, ``horizon``, ``smooth``), with the command line's defaults;
    ``fractions``: how :meth:`fit` cuts a frame into train and valid (prepare's train:valid
    ratio; the test share is not used)."""

    def __init__(self, detector=detectors.DEFAULT, *, lookback: int = PreprocessOptions.lookback,
                 shift: int = PreprocessOptions.shift, detrend: int = PreprocessOptions.detrend,
                 clip: float = PreprocessOptions.clip, features=PreprocessOptions.features,
                 drop=PreprocessOptions.drop, allow_gaps: bool = PreprocessOptions.allow_gaps,
                 max_gap: str | None = PreprocessOptions.max_gap, labels: str = PreprocessOptions.labels,
                 time_column: str = PreprocessOptions.time_column, label_column: str = PreprocessOptions.label_column,
                 time_format: str | None = PreprocessOptions.time_format, params: dict | None = None,
                 rule: str = ThresholdOptions.rule, rule_params: dict | None = None,
                 merge=ThresholdOptions.merge, horizon=ThresholdOptions.horizon,
                 smooth: int = ThresholdOptions.smooth, fractions=PrepareOptions.fractions):
        preprocess = PreprocessOptions(shift=shift, lookback=lookback, drop=tuple(drop),
                                       features=None if features is None else tuple(features),
                                       allow_gaps=allow_gaps, detrend=detrend, clip=clip, max_gap=max_gap,
                                       labels=labels, time_column=time_column, label_column=label_column,
                                       time_format=time_format)
        self._setup(detector, preprocess, ThresholdOptions(rule, dict(rule_params or {}), merge, horizon, smooth),
                    params, fractions)

    @classmethod
    def from_options(cls, detector, preprocess: PreprocessOptions, threshold: ThresholdOptions,
                     params: dict | None = None) -> "Pipeline":
        """An unfitted pipeline of the options objects the steps hold (``backtest``'s folds)."""
        pipe = cls.__new__(cls)
        pipe._setup(detector, preprocess, threshold, params, None)
        return pipe

    def _setup(self, detector, preprocess: PreprocessOptions, threshold: ThresholdOptions, params, fractions) -> None:
        self.preprocess, self.threshold = preprocess, threshold
        self.fractions = PrepareOptions(fractions=fractions).fractions
        self.detector = detector
        self.params = dict(params or {})
        if not isinstance(detector, detectors.Detector) or self.params:
            detectors.create(detector, **self.params)  # bad options fail before any work
        self.scorer: Scorer | None = None
        self.info: dict = {}

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame, valid: pd.DataFrame | None = None) -> "Pipeline":
        """Fit on ``frame`` (time, sensors, optional label): the preprocessor, the detector on
        its train part, and the alarm rule on its valid part, cut by time as ``prepare`` cuts
        train:valid; or on ``valid``, a frame of the rows after ``frame`` (then every window
        of ``frame`` trains)."""
        table = self._read(frame, "frame")
        cut = len(table)
        if valid is not None:
            table = Table.concat(table, self._read(valid, "valid"))
        pre = Preprocessor(self.preprocess).fit_layout(table)
        rows = pre.rows(table)
        ends = pre.window_ends(rows, recipe_index=self.preprocess.allow_gaps)
        if valid is None:
            f = self.fractions
            options = PrepareOptions(**asdict(self.preprocess), fractions=(f[0] / (f[0] + f[1]), f[1] / (f[0] + f[1]), 0.0))
            parts = split_ends(ends, len(rows), options)
        else:
            # As prepare --train-rows: a window belongs to the part its first row is in.
            first_valid = int(np.searchsorted(rows.source_row, cut))
            parts = {"train": ends[ends < first_valid],
                     "valid": ends[ends - self.preprocess.lookback + 1 >= first_valid]}
        for name, index in parts.items():
            if len(index) == 0:
                raise UserError(f"the {name} part has no windows of {self.preprocess.lookback} rows; give more rows")
        self.fit_rows(pre, rows, parts["train"], parts["valid"])
        if table.utc_offset is not None:  # the data's own time zone, for figures
            self.scorer = replace(self.scorer, utc_offset_seconds=int(table.utc_offset[-1]))
        labelled = table.y is not None
        self.info = {
            "package_version": __version__,
            "input": {"path": "(a DataFrame)", "rows": len(table), "labelled": labelled,
                      "breaks": int(table.y.sum()) if labelled else 0},
            "options": asdict(self.preprocess),
            "features": list(table.features),
            "n_features": len(table.features),
            "lookback": self.preprocess.lookback,
            "interval_minutes": pre.interval_minutes,
            "utc_offset_seconds": self.scorer.utc_offset_seconds,
        }
        return self

    def fit_rows(self, pre: Preprocessor, rows, train_ends: np.ndarray, valid_ends: np.ndarray,
                 previous=None) -> "Pipeline":
        """Fit on prepared rows: the scaler and the detector on the windows ending at
        ``train_ends``, the alarm rule (``threshold``'s choice) on those ending at ``valid_ends``.
        ``previous``: a fitted detector to start from (where the detector warm-starts)."""
        pre = pre.refit(rows, train_ends)
        train_w, valid_w = pre.windows(rows, train_ends), pre.windows(rows, valid_ends)
        detector = detectors.create(self.detector, **self.params)
        if previous is not None and detector.warm_starts:
            detector.warm_start(previous)
        detector.fit(train_w, valid_w)
        threshold = self.threshold.resolved(pre.interval_minutes, self.preprocess.shift)
        valid_scores, train_normal = evaluation.rule_scores(
            detector.score, valid_w, train_w if threshold.needs_train else None, threshold.smooth, threshold.on_train)
        scored = evaluation.scored(valid_scores, valid_w, pre.interval_minutes, threshold.merge,
                                   threshold.horizon, train_normal)
        value = thresholds.choose_threshold(threshold.rule, scored, **threshold.params)
        rule = AlarmRule(value, threshold.merge, threshold.horizon, threshold.rule, threshold.params,
                         threshold.smooth)
        self.scorer = Scorer(pre, detector, rule)
        return self

    def _read(self, frame: pd.DataFrame, what: str) -> Table:
        o = self.preprocess
        labels = "optional" if o.label_column == LABEL else "required"
        return read_table(_csv(frame, what), o.features, o.drop, labels=labels, columns=o.columns)

    # -- scoring ---------------------------------------------------------------------------
    @property
    def fitted(self) -> Scorer:
        if self.scorer is None:
            raise UserError("the pipeline is not fitted: call fit(frame) or Pipeline.load(run_dir) first")
        return self.scorer

    @property
    def rule(self) -> AlarmRule:
        """The alarm rule: threshold value, merge gap, horizon, and how the value was chosen."""
        return self.fitted.rule

    def score(self, frame: pd.DataFrame, history: pd.DataFrame | None = None,
              options: ScoreOptions = ScoreOptions()) -> pd.DataFrame:
        """The windows of ``frame`` scored as ``score`` scores a file (``history``: earlier rows,
        context only): one row per window with scores.csv's columns."""
        import pandas as pd

        stream = Stream(self.fitted, options)
        if history is not None:
            seed(stream, _csv(history, "history"), options.chunk_rows)
        frames = list(feed_file(stream, _csv(frame, "frame"), options.chunk_rows))
        columns = stream.header().rstrip("\n").split(",")
        return pd.concat([f.frame() for f in frames], ignore_index=True) if frames else pd.DataFrame(columns=columns)

    def score_table(self, table: Table, carry: Carry | None = None, history: Table | None = None,
                    options: ScoreOptions = ScoreOptions()) -> tuple[pd.DataFrame, Carry]:
        """Rows read already (a :class:`Table` of the run's features), scored through the same
        engine, after ``carry`` (what an earlier call, perhaps with another fitted pipeline,
        handed on) and ``history`` (rows carried, not scored); returns the windows and the
        carry for the next call."""
        import pandas as pd

        stream = Stream(self.fitted, options, carry)
        if history is not None and len(history):
            stream.feed_table(history, "history", emit=False)
        frame = stream.feed_table(table, "rows") if len(table) else None
        columns = stream.header().rstrip("\n").split(",")
        return (frame.frame() if frame is not None else pd.DataFrame(columns=columns)), stream.carry

    # -- the run directory -----------------------------------------------------------------
    def save(self, run_dir, allow_pickle: bool = False, wait: float = DEFAULT_WAIT) -> None:
        """Write the pipeline as a run directory (prepare, train and threshold results) that
        ``score``, ``report`` and :meth:`load` read. ``allow_pickle``: save a plug-in detector
        whose fitted state only pickle can hold (loading it runs its code)."""
        scorer = self.fitted
        scorer.detector.check_save(allow_pickle)
        rule, pre, detector = scorer.rule, scorer.preprocessor, scorer.detector
        info = self.info or {"package_version": __version__, "options": asdict(pre.options),
                             "features": list(pre.features_), "n_features": len(pre.features_),
                             "lookback": pre.lookback, "interval_minutes": pre.interval_minutes,
                             "utc_offset_seconds": scorer.utc_offset_seconds}
        run = Run(run_dir)
        with run.locked(wait, create=True):
            with run.writer("prepare", asdict(pre.options), inputs={}) as out:
                pre.save(out.path(PREPROCESSOR))
                out.json(PREPARE_JSON, info)
            with run.writer("train", {"detector": detector.name, **detector.describe()["options"]}, {}) as out:
                detector.save(out.path(DETECTOR), allow_pickle)
                out.json(TRAIN_JSON, {"package_version": __version__, "detector": detector.describe()})
            chosen = {"rule": rule.rule, "params": rule.params, "value": rule.value,
                      "merge_minutes": rule.merge_minutes, "horizon_minutes": rule.horizon_minutes,
                      **smoothing(rule.smooth), "detector": detector.name, "engine": detector.engine,
                      "interval_minutes": pre.interval_minutes}
            with run.writer("threshold", {"rule": rule.rule, "params": rule.params, "merge": rule.merge_minutes,
                                          "horizon": rule.horizon_minutes, **smoothing(rule.smooth),
                                          "engine": detector.engine}, {}) as out:
                out.json(THRESHOLD_JSON, chosen)

    @classmethod
    def load(cls, run_dir, engine: str | None = None, allow_pickle: bool = False,
             wait: float = DEFAULT_WAIT) -> "Pipeline":
        """The pipeline of a run directory (made by :meth:`save` or by the command line)."""
        scorer = load_scorer(run_dir, engine, wait, allow_pickle)
        rule = scorer.rule
        pipe = cls.from_options(scorer.detector, scorer.preprocessor.options,
                                ThresholdOptions(rule.rule, dict(rule.params), rule.merge_minutes, rule.horizon_minutes,
                                                 rule.smooth))
        pipe.scorer = scorer
        return pipe


def _csv(frame: pd.DataFrame, what: str) -> Buffer:
    """``frame`` as the CSV text ``score`` would read from a file (numbers written exactly)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise UserError(f"{what}: expected a pandas DataFrame with a time column and sensor columns, "
                        f"got {type(frame).__name__}")
    return Buffer(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"), what)

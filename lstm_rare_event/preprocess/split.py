"""How ``prepare`` cuts a file's windows into train, valid and test: the options and the cut.

The Python API (:class:`lstm_rare_event.pipeline.Pipeline`) cuts its frames the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.preprocessor import PreprocessOptions
from lstm_rare_event.preprocess.spans import parse_span
from lstm_rare_event.preprocess.windows import SPLITS

SPLIT_KINDS = ("time", "random")


@dataclass(frozen=True)
class PrepareOptions(PreprocessOptions):
    """Everything ``prepare`` can be told: how rows become windows, and how they are split."""

    split: str = "time"
    fractions: tuple[float, float, float] | None = None
    seed: int = 123
    # Only the most recent rows: a duration (3d) or a row count; None keeps all.
    last: str | None = None
    # Fit per experiment: train and validate in the first N rows (split train:valid as --fractions
    # does), judge (test) every later row; None splits all rows by --fractions.
    train_rows: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.fractions is None:
            # The recipe's random split is 80/20 twice (64/16/20); by time, 60/20/20.
            default = (0.64, 0.16, 0.2) if self.split == "random" else (0.6, 0.2, 0.2)
            object.__setattr__(self, "fractions", default)
        if self.split not in SPLIT_KINDS:
            raise UserError(f"--split must be 'time' or 'random', got {self.split!r}")
        f = tuple(self.fractions)
        # A test share of 0 is a deployment's retrain: train on the latest data, validate on the latest day.
        if (len(f) != 3 or not all(math.isfinite(v) and v >= 0 for v in f) or min(f[:2]) <= 0
                or abs(sum(f) - 1) > 1e-6):
            shown = ",".join(f"{v:g}" for v in f)
            raise UserError(f"--fractions must be three numbers adding up to 1, train and valid above 0 "
                            f"(test may be 0), got {shown}")
        if self.last is not None:
            parse_span(self.last, "--last")
        if not 0 <= self.seed < 2**32:
            raise UserError(f"--seed must be between 0 and 4294967295, got {self.seed}")
        if self.train_rows is not None:
            if self.split != "time":
                raise UserError("--train-rows splits by time; leave out --split random")
            if self.train_rows < 2 * self.lookback:
                raise UserError(f"--train-rows must leave a window of --lookback {self.lookback} rows to train "
                                f"and one to validate: at least {2 * self.lookback}, got {self.train_rows}")

    @property
    def preprocess(self) -> PreprocessOptions:
        return PreprocessOptions(**{f.name: getattr(self, f.name) for f in fields(PreprocessOptions)})


def split_ends(ends: np.ndarray, n_rows: int, options: PrepareOptions, train_rows: int | None = None
               ) -> dict[str, np.ndarray]:
    """Window end rows per split; ``train_rows``: the rows (of ``n_rows``) that --train-rows keeps
    for train and valid."""
    if options.fractions[2] == 0:
        options = replace(options, fractions=(*options.fractions[:2], 0.0))
    if options.split == "random":
        from sklearn.model_selection import train_test_split

        if options.fractions[2] == 0:
            train, valid = train_test_split(ends, test_size=options.fractions[1], random_state=options.seed)
            return {"train": np.sort(train), "valid": np.sort(valid)}

        # The recipe splits twice with one seed: (train+valid) vs test, then train vs valid.
        train_valid, test = train_test_split(ends, test_size=options.fractions[2], random_state=options.seed)
        valid_share = options.fractions[1] / (options.fractions[0] + options.fractions[1])
        train, valid = train_test_split(train_valid, test_size=valid_share, random_state=options.seed)
        return {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}
    cuts = time_cuts(n_rows, options.fractions) if train_rows is None else train_cuts(train_rows, options.fractions)
    # A window belongs to the part its first row is in; windows that straddle a cut are dropped,
    # so no row is seen by two splits.
    first = ends - options.lookback + 1
    bounds = [0, *cuts, n_rows]
    names = SPLITS if options.fractions[2] > 0 or train_rows is not None else SPLITS[:2]
    parts = {name: ends[(first >= bounds[i]) & (ends < bounds[i + 1])] for i, name in enumerate(names)}
    if train_rows is not None:
        # Every later row is judged, as score with the fitting rows for --history would: a test
        # window may start in them (it sees their values, never their labels).
        parts["test"] = ends[ends >= bounds[2]]
    return parts


def time_cuts(n_rows: int, fractions) -> list[int]:
    return [int(round(n_rows * fractions[0])), int(round(n_rows * (fractions[0] + fractions[1])))]


def train_cuts(train_rows: int, fractions) -> list[int]:
    """The first ``train_rows`` rows split train:valid in the ratio of --fractions; the rest is test."""
    return [int(round(train_rows * fractions[0] / (fractions[0] + fractions[1]))), train_rows]

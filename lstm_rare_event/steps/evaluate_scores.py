"""The ``evaluate-scores`` step: point-wise F1, FAR and MAR of ``score --all-rows`` outputs,
pooled over experiments, as the SKAB benchmark counts them.

Each experiment is a run prepared with ``--train-rows N --labels intervals`` on one file and
that file scored whole with ``score --all-rows``. Its labels are read again from the file the
run was prepared from (the path in prepare.json, refused when its contents changed since),
with the run's read options. Every row is counted once: a row without a score is not flagged.
Two counts, both pooled over every experiment's rows:

- ``judged``: the rows from row N on, which neither the fit nor the threshold saw;
- ``all_rows``: every row of the file, the N fitting rows included with their own flags: how
  SKAB's leaderboard counts (its FAR is therefore lower than the judged rows' FAR).

Intervals are percentile intervals from resampling whole experiments.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lstm_rare_event.alarms.bootstrap import pooled_metrics
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import sha256_file
from lstm_rare_event.preprocess.csv import parse_times, read_table
from lstm_rare_event.run import DEFAULT_WAIT, Run
from lstm_rare_event.tables import format_table

# pandas (a quarter of a second to import) is imported by the functions that use it: the
# command line imports this module on every call, a score of a few plain rows included.
if TYPE_CHECKING:
    import pandas as pd

REPLICATES = 1000
SEED = 0
COUNTS = ("tp", "fp", "fn", "tn")
# The two ways rows are counted (module docstring).
WAYS = ("judged", "all_rows")


def experiment(run_dir, scores_path, wait: float = DEFAULT_WAIT) -> dict:
    """One experiment's rows: the confusion counts over its judged rows and over all its rows,
    and how many of its judged rows have no score."""
    run = Run(run_dir)
    with run.reading(wait):
        info = run.prepare_info()
        pre = run.preprocessor()
    options, given = info.data.get("options", {}), info.data.get("input", {})
    train_rows = options.get("train_rows")
    if train_rows is None or options.get("labels") != "intervals":
        raise UserError(f"{run_dir}: evaluate-scores judges the rows after --train-rows of an interval-labelled "
                        "file; prepare it with --train-rows N --labels intervals")
    source = Path(given.get("path", ""))
    if not source.is_file() or sha256_file(source) != given.get("sha256"):
        raise UserError(f"{run_dir}: the file it was prepared from ({source}) is missing or has changed; "
                        "its labels are read from there")
    table = read_table(source, pre.options.features, pre.options.drop, labels="required", sep=pre.sep_,
                       decimal=pre.decimal_, columns=pre.options.columns)
    scores = _read_scores(scores_path)
    if len(scores) != len(table) or not np.array_equal(parse_times(scores["time"], scores_path), table.time):
        raise UserError(f"{scores_path}: {len(scores):,} rows, not the {len(table):,} rows of {source} at the same "
                        "times; score the whole file with --all-rows, with this run")
    flags = scores["flag"].to_numpy() == 1
    y = table.y == 1
    judged = np.arange(len(table)) >= train_rows
    return {"run": str(run_dir), "scores": str(scores_path), "input": str(source), "rows": len(table),
            "judged_rows": int(judged.sum()),
            "judged_unscored": int((judged & scores["score"].isna().to_numpy()).sum()),
            "judged": _counts(y[judged], flags[judged]), "all_rows": _counts(y, flags)}


def _read_scores(path) -> pd.DataFrame:
    import pandas as pd

    try:
        scores = pd.read_csv(path, usecols=["time", "score", "flag"], dtype={"time": str})
    except FileNotFoundError:
        raise UserError(f"{path}: no such scores file") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"{path}: not a CSV written by score (time, score, flag columns): {exc}") from None
    if not scores["flag"].isin([0, 1]).all():
        raise UserError(f"{path}: the flag column must be 0 or 1")
    return scores


def _counts(y: np.ndarray, flags: np.ndarray) -> dict:
    return {"tp": int(np.sum(y & flags)), "fp": int(np.sum(~y & flags)), "fn": int(np.sum(y & ~flags)),
            "tn": int(np.sum(~y & ~flags))}


def evaluate_scores(pairs, replicates: int = REPLICATES, seed: int = SEED, wait: float = DEFAULT_WAIT) -> dict:
    """``pairs``: (run directory, its ``score --all-rows`` output) per experiment. Returns the
    pooled metrics both ways (:data:`WAYS`), with intervals by experiment, and each experiment's
    counts."""
    if not pairs:
        raise UserError("evaluate-scores needs at least one RUN SCORES pair")
    experiments = [experiment(run_dir, scores, wait) for run_dir, scores in pairs]
    report = {"experiments": len(experiments), "rows": sum(e["rows"] for e in experiments),
              "judged_rows": sum(e["judged_rows"] for e in experiments),
              "judged_unscored": sum(e["judged_unscored"] for e in experiments),
              "bootstrap": {"replicates": replicates, "seed": seed, "resampled": "experiments"}}
    for way in WAYS:
        counts = [[e[way][k] for k in COUNTS] for e in experiments]
        report[way] = pooled_metrics(counts, replicates, seed)
    report["per_experiment"] = experiments
    return report


def evaluate_scores_text(report: dict) -> str:
    """The pooled figures as a small table."""
    def shown(m, name):
        low, high = m[f"{name}_interval"]
        scale, unit = (1, "") if name == "f1" else (100, " %")
        return f"{m[name] * scale:.3g}{unit} [{low * scale:.3g}, {high * scale:.3g}]"

    rows = [["rows counted", "F1 [95 % CI]", "FAR", "MAR", "precision", "recall"]]
    for way, label in (("judged", f"judged ({report['judged_rows']:,})"),
                       ("all_rows", f"all ({report['rows']:,}, SKAB's count)")):
        m = report[way]
        rows.append([label, shown(m, "f1"), shown(m, "far"), shown(m, "mar"), f"{m['precision']:.3f}",
                     f"{m['recall']:.3f}"])
    note = (f"{report['experiments']} experiments pooled; intervals resample experiments "
            f"({report['bootstrap']['replicates']} replicates); {report['judged_unscored']:,} judged rows without a "
            "score count as not flagged")
    return f"{format_table(rows)}\n{note}"

"""Bootstrap intervals for ROC-AUC and PR-AUC, resampled by break event.

Windows are not independent: neighbouring windows share all but one row, and the positive
windows of one break are near-copies of each other. Resampling single windows would treat a
break seen through two windows as two independent successes and give intervals that are too
narrow. So whole blocks are resampled (a block bootstrap):

- each break event (the positive windows sharing an ``event_time``) is one block, or with
  interval labels each anomaly interval (:func:`interval_groups`);
- normal windows are blocked by the calendar day of their end time.

Blocks are drawn with replacement separately for breaks and for normal days (stratified), so
every replicate has both classes and the same numbers of breaks and days as the data. All
detectors are scored on the same replicates, which makes their paired differences meaningful.

Point-wise figures of several independent experiments pooled (SKAB's protocol) resample whole
experiments instead (:func:`pooled_metrics`).

A replicate is a count per window (how often its block was drawn), and the metrics are
computed from those counts as weights, for all replicates at once; with integer weights this
equals scikit-learn's metric on the replicate's windows repeated by count.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from lstm_rare_event.alarms.intervals import counted_metrics, runs

METRICS = ("roc_auc", "pr_auc")
PERCENTILES = (2.5, 97.5)


def event_groups(y, event_time, end_time) -> np.ndarray:
    """(N,) block id per window: one per break event (positive windows sharing an
    ``event_time``), then one per calendar day of ``end_time`` for the normal windows."""
    y, event_time = np.asarray(y), np.asarray(event_time, dtype="datetime64[s]")
    positive = y == 1
    if np.isnat(event_time[positive]).any():
        raise ValueError("every positive window needs the event_time of its break")
    return _blocks(positive, np.unique(event_time[positive], return_inverse=True)[1], end_time)


def interval_groups(y, end_time) -> np.ndarray:
    """(N,) block id per window for interval labels: one per anomaly interval (a run of
    positive windows, :func:`lstm_rare_event.alarms.intervals.runs`), then one per calendar
    day of ``end_time`` for the normal windows."""

    positive = np.asarray(y) == 1
    starts, _ = runs(positive)
    run_of = np.cumsum(np.isin(np.arange(len(positive)), starts)) - 1  # the last run started by each window
    return _blocks(positive, run_of[positive], end_time)


def blocks(labels: str, y, event_time, end_time) -> np.ndarray:
    """Block ids for ``labels`` "events" (:func:`event_groups`) or "intervals" (:func:`interval_groups`)."""
    if labels == "intervals":
        return interval_groups(y, end_time)
    return event_groups(y, event_time, end_time)


def _blocks(positive: np.ndarray, positive_ids: np.ndarray, end_time) -> np.ndarray:
    """Block ids: ``positive_ids`` (0..P-1) on the positive windows, then calendar days."""
    day = np.asarray(end_time, dtype="datetime64[s]").astype("datetime64[D]")
    groups = np.empty(len(positive), dtype=np.int64)
    groups[positive] = positive_ids
    _, normal_ids = np.unique(day[~positive], return_inverse=True)
    groups[~positive] = normal_ids + (groups[positive].max() + 1 if positive.any() else 0)
    return groups


def _group_classes(y, groups) -> tuple[np.ndarray, np.ndarray]:
    """(groups renumbered 0..G-1, whether each group is positive); a group must be one class."""
    ids, index = np.unique(np.asarray(groups), return_inverse=True)
    positive_count = np.bincount(index, weights=np.asarray(y) == 1, minlength=len(ids))
    size = np.bincount(index, minlength=len(ids))
    if np.any((positive_count > 0) & (positive_count < size)):
        raise ValueError("a group mixes positive and normal windows; use event_groups")
    return index, positive_count > 0


def replicate_counts(is_positive_group: np.ndarray, n: int, rng) -> np.ndarray:
    """(n, G) times each group is drawn: positive and normal groups each drawn with
    replacement as many times as there are of them."""
    counts = np.zeros((n, len(is_positive_group)), dtype=np.int64)
    for members in (np.flatnonzero(is_positive_group), np.flatnonzero(~is_positive_group)):
        draws = members[rng.integers(0, len(members), size=(n, len(members)))]
        np.add.at(counts, (np.arange(n)[:, None], draws), 1)
    return counts


def weighted_metrics(y, score, weights) -> dict[str, np.ndarray]:
    """ROC-AUC and average precision (scikit-learn's definitions, ties included) of ``score``
    under each row of ``weights`` (R, N): (R,) each."""
    order = np.argsort(score, kind="stable")
    ranked = np.asarray(score)[order]
    # Tied scores form one block: one threshold, and half credit for tied pairs in ROC-AUC.
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    w = np.asarray(weights, dtype=np.float64)[:, order]
    is_pos = np.asarray(y)[order] == 1
    pos = np.add.reduceat(w * is_pos, starts, axis=1)  # (R, blocks), ascending score
    neg = np.add.reduceat(w * ~is_pos, starts, axis=1)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)

    neg_below = np.cumsum(neg, axis=1) - neg
    roc_auc = (pos * (neg_below + neg / 2)).sum(axis=1) / (total_pos * total_neg)

    # Average precision: precision at each threshold, from the highest score down, weighted by
    # the recall gained there; a block nothing of which was drawn gains no recall.
    tp = np.cumsum(pos[:, ::-1], axis=1)
    flagged = tp + np.cumsum(neg[:, ::-1], axis=1)
    precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
    pr_auc = (pos[:, ::-1] * precision).sum(axis=1) / total_pos
    return {"roc_auc": roc_auc, "pr_auc": pr_auc}


def _interval(estimate: float, replicates: np.ndarray) -> dict:
    low, high = np.percentile(replicates, PERCENTILES)
    return {"estimate": float(estimate), "low": float(low), "high": float(high)}


def bootstrap_metrics(y, scores: dict, groups, n: int = 1000, seed: int = 0, metrics=METRICS) -> dict:
    """Point estimates and 95% percentile intervals of ``metrics`` for every detector in
    ``scores`` (name -> (N,) scores, higher = more likely a break), and of the paired
    difference ``a - b`` for every pair in the order given, all on the same ``n`` replicates.

    ``groups`` are block ids (:func:`event_groups`). A difference whose interval lies wholly on
    one side of 0 has ``excludes_zero`` true.
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; choose from {METRICS}")
    y = np.asarray(y)
    index, is_positive_group = _group_classes(y, groups)
    if is_positive_group.all() or not is_positive_group.any():
        raise ValueError("bootstrap needs both positive and normal windows")
    counts = replicate_counts(is_positive_group, n, np.random.default_rng(seed))
    weights = np.vstack([np.ones(len(y)), counts[:, index]])  # row 0: the data as it is
    values = {name: weighted_metrics(y, np.asarray(score), weights) for name, score in scores.items()}

    detectors = {
        name: {m: _interval(v[m][0], v[m][1:]) for m in metrics} for name, v in values.items()
    }
    differences = []
    for a, b in combinations(scores, 2):
        row = {"a": a, "b": b}
        for m in metrics:
            diff = values[a][m] - values[b][m]
            row[m] = _interval(diff[0], diff[1:])
            row[m]["excludes_zero"] = bool(row[m]["low"] > 0 or row[m]["high"] < 0)
        differences.append(row)
    return {
        "replicates": n,
        "seed": seed,
        "percentiles": list(PERCENTILES),
        "blocks": {"breaks": int(is_positive_group.sum()), "normal_blocks": int((~is_positive_group).sum())},
        "detectors": detectors,
        "differences": differences,
    }


def pooled_replicates(counts, replicates: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """F1, FAR and MAR of ``replicates`` resamplings of whole experiments, ``counts`` (E, 4) being
    each experiment's tp, fp, fn, tn (nan where a replicate has no row of a class). The draws
    depend only on the number of experiments and ``seed``: two detectors' counts of the same
    experiments get the same draws, so their replicates' differences are paired."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
    rng = np.random.default_rng(seed)
    drawn = counts[rng.integers(0, len(counts), size=(replicates, len(counts)))].sum(axis=1)
    tp, fp, fn, tn = drawn.T.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"f1": 2 * tp / (2 * tp + fp + fn), "far": fp / (fp + tn), "mar": fn / (fn + tp)}


def percentile_interval(values: np.ndarray) -> list[float]:
    """The 95 % percentile interval of the finite replicates (nan, nan without any)."""
    values = values[np.isfinite(values)]
    return [float(v) for v in np.percentile(values, PERCENTILES)] if values.size else [float("nan")] * 2


def pooled_metrics(counts, replicates: int = 1000, seed: int = 0) -> dict:
    """:func:`counted_metrics` of several experiments' rows together (SKAB's protocol pools
    them), ``counts`` (E, 4) being each experiment's tp, fp, fn, tn; with a 95 % percentile
    interval of F1, FAR and MAR from resampling whole experiments (its rows are not
    independent of each other, the experiments are)."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
    pooled = counted_metrics(*(int(v) for v in counts.sum(axis=0)))
    for name, values in pooled_replicates(counts, replicates, seed).items():
        pooled[f"{name}_interval"] = percentile_interval(values)
    return pooled

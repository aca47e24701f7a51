"""The ``backtest`` step: walk forward through history as a retrain-and-score deployment does.

From ``start``, every ``every``: the preprocessor's scaler and each detector are fitted on the
``train_window`` of rows before the validation window, the threshold rule is applied to the
``valid_window`` just before the cut, and the rows up to the next cut are scored with every
earlier row as history (detrending is causal, so each window sees what a live job would).
Each fold is a :class:`~lstm_rare_event.pipeline.Pipeline`, saved as a run directory
``DIR/folds/DETECTOR/NNN/`` that ``score`` reads, and its rows are scored through the streaming
engine of ``score``, the raw rows carried from fold to fold as a ``score --state`` carries them
over a nightly retrain: the backtest measures what the cron line runs. (A plug-in detector that
only pickle can save is scored the same way and not kept.) The autoencoder starts each fold
from the previous fold's weights (``warm_start``).

Fold results are kept in ``DIR/folds/`` with the sha256 of each fold file as written, so a
killed backtest resumes from its last finished fold when run again with the same arguments,
and a fold whose files changed since (edited, cut short) is computed again; other arguments
into the same DIR are refused.
Quality is pooled over the folds: scores are divided by their fold's threshold so that one
cut (1) is every fold's alarm line and pooled rankings compare like with like.

Why one module of about 450 lines: planning the folds, running them and pooling their results
share the fold records (:class:`FoldStore`) and the options; the metrics, figures and
verdict wording are the alarms layer's, called from here.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lstm_rare_event import detectors, log
from lstm_rare_event.version import __version__
from lstm_rare_event.alarms import episodes, evaluation, intervals, metrics, plots, thresholds
from lstm_rare_event.alarms import verdict as verdicts
from lstm_rare_event.alarms.rule import flag, number_episodes
from lstm_rare_event.alarms.bootstrap import blocks, bootstrap_metrics
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import atomic_file, atomic_write_text, dumps, load_npz, read_json, sha256_file, to_jsonable
from lstm_rare_event.pipeline import Pipeline
from lstm_rare_event.preprocess.csv import Table, read_table
from lstm_rare_event.preprocess.preprocessor import PreprocessOptions, Preprocessor
from lstm_rare_event.preprocess.spans import as_duration, parse_span
from lstm_rare_event.run import (
    BACKTEST_CONFIG, BACKTEST_CSV, BACKTEST_FOLDS_PNG, BACKTEST_JSON, BACKTEST_TIMELINE_PNG, BACKTEST_WARNING_PNG, DEFAULT_WAIT,
    FOLDS, Run,
)
from lstm_rare_event.alarms.thresholds import ThresholdOptions
from lstm_rare_event.tables import format_table



@dataclass(frozen=True)
class BacktestOptions:
    """The walk: where it starts, how often it refits, and on how much history.

    ``start``: a share of the rows (``40%``) or a date; ``every``, ``train_window`` and
    ``valid_window``: durations (``1d``, ``12h``) or row counts; ``train_window`` ``all``
    uses every row before the validation window.
    """

    start: str = "40%"
    every: str = "1d"
    # Recency helps on the real data: a Mahalanobis refitted daily on the last 3 days of rows
    # beat one refitted on all earlier rows (issue 9's study; bench/backtest.md).
    train_window: str = "3d"
    valid_window: str = "1d"
    detectors: tuple[str, ...] = (detectors.DEFAULT,)
    warm_start: bool = True
    replicates: int = 1000
    seed: int = 0

    def __post_init__(self):
        for name in self.detectors:
            detectors.detector_class(name)
        if len(set(self.detectors)) != len(self.detectors):
            raise UserError(f"--detector names a detector twice: {','.join(self.detectors)}")
        parse_span(self.every, "--every")
        parse_span(self.train_window, "--train-window", allow_all=True)
        parse_span(self.valid_window, "--valid-window")
        if self.replicates < 10:
            raise UserError(f"--replicates must be at least 10, got {self.replicates}")


@dataclass
class Plan:
    """The folds: cut times and, per fold, which windows train, validate and test."""

    cuts: np.ndarray  # (K+1,) datetime64[s]: fold k tests windows ending in [cuts[k], cuts[k+1])
    train: list[np.ndarray] = field(default_factory=list)  # window indexes per fold
    valid: list[np.ndarray] = field(default_factory=list)
    test: list[np.ndarray] = field(default_factory=list)


def _start_time(start: str, times: np.ndarray) -> np.datetime64:
    text = str(start).strip()
    if text.endswith("%"):
        try:
            share = float(text[:-1]) / 100
        except ValueError:
            share = -1.0
        if not 0 < share < 1:
            raise UserError(f"--start {start!r}: a share of the rows must be between 0% and 100%")
        return times[int(share * len(times))]
    try:
        return np.datetime64(text.replace(" ", "T"), "s")
    except ValueError:
        raise UserError(f"--start {start!r}: expected a share of the rows such as 40%, or a date such as "
                        "1999-05-12 or 1999-05-12T06:00") from None


def plan_folds(end_time: np.ndarray, row_times: np.ndarray, interval: np.timedelta64,
               options: BacktestOptions) -> Plan:
    start = _start_time(options.start, row_times)
    every = as_duration(parse_span(options.every, "--every"), interval)
    train_w = as_duration(parse_span(options.train_window, "--train-window", allow_all=True), interval)
    valid_w = as_duration(parse_span(options.valid_window, "--valid-window"), interval)
    last = end_time[-1] if len(end_time) else start
    if start > last:
        raise UserError(f"--start {options.start}: after the last window ({last})")
    cuts = np.arange(start, last + np.timedelta64(1, "s"), every).astype("datetime64[s]")
    cuts = np.append(cuts, last + np.timedelta64(1, "s"))
    plan = Plan(cuts)
    for k in range(len(cuts) - 1):
        cut = cuts[k]
        valid_from = cut - valid_w
        train_from = end_time[0] if train_w is None else valid_from - train_w
        plan.train.append(np.flatnonzero((end_time >= train_from) & (end_time < valid_from)))
        plan.valid.append(np.flatnonzero((end_time >= valid_from) & (end_time < cut)))
        plan.test.append(np.flatnonzero((end_time >= cut) & (end_time < cuts[k + 1])))
    return plan


def _config(input_path, options: BacktestOptions, preprocess: PreprocessOptions, params: dict,
            threshold: ThresholdOptions) -> dict:
    return to_jsonable({
        "input_sha256": sha256_file(input_path),
        "backtest": {k: v for k, v in asdict(options).items() if k not in ("replicates",)},
        "preprocess": asdict(preprocess),
        "detector_params": params,
        "threshold": threshold.recorded(),
        "package_version": __version__,
        "folds": "run directories",  # earlier backtests kept only the warm-started detectors
    })


def _claim(out: Path, config: dict) -> None:
    """Same arguments: resume; other arguments into a used DIR: refuse."""
    path = out / FOLDS / BACKTEST_CONFIG
    if path.exists():
        if read_json(path) != json.loads(dumps(config)):
            raise UserError(f"{out}: holds a backtest with other arguments or input; choose a new --out "
                            f"or remove {out / FOLDS}")
        return
    atomic_write_text(path, dumps(config))


class FoldStore:
    """Finished folds on disk (one npz per detector and fold, and the sha256 of each as written),
    so a killed run resumes from the fold files it wrote, and from no other."""

    KEYS = ("index", "score", "threshold")
    LEDGER = "sha256.json"  # in each detector's folder: the hash of each fold file as written

    def __init__(self, out: Path):
        self.folder = out / FOLDS

    def path(self, detector: str, k: int) -> Path:
        return self.folder / detector / f"{k:03d}.npz"

    def run_dir(self, detector: str, k: int) -> Path:
        """The fold's pipeline, as a run directory that ``score`` reads."""
        return self.folder / detector / f"{k:03d}"

    def _ledger(self, detector: str) -> Path:
        return self.folder / detector / self.LEDGER

    def _hashes(self, detector: str) -> dict:
        path = self._ledger(detector)
        return read_json(path, f"remove {self.folder} to start the backtest afresh") if path.exists() else {}

    def load(self, detector: str, k: int) -> dict | None:
        """Fold ``k``'s arrays, or None when it is to be computed: no file, a file whose hash
        was never recorded (a kill between the two writes), or one that changed since it was
        written (edited, cut short), which a warning names."""
        path = self.path(detector, k)
        if not path.exists():
            return None
        recorded = self._hashes(detector).get(path.name)
        if recorded != sha256_file(path):
            if recorded is not None:
                log.warning(f"{path}: differs from the fold file backtest wrote; recomputed")
            return None
        return load_npz(path, self.KEYS, "a fold written by backtest")

    def finished(self, detector: str, k: int, wait: float) -> tuple[bool, object | None]:
        """Whether fold ``k`` is finished as backtest wrote it, and its fitted detector (None
        when not kept: a plug-in only pickle saves): its fold file, and its run directory when
        kept, unchanged since (a changed one is warned about and the fold computed again)."""
        if self.load(detector, k) is None:
            return False, None
        run = Run(self.run_dir(detector, k))
        if not run.path.exists():
            return True, None
        try:
            with run.reading(wait):
                return True, run.detector()
        except UserError as exc:
            if exc.exit_code != UserError.exit_code:
                raise  # busy: not a changed fold
            log.warning(f"{run.path}: differs from the fold run backtest wrote ({exc}); recomputed")
            return False, None

    def save(self, detector: str, k: int, **arrays) -> None:
        path = self.path(detector, k)
        with atomic_file(path, "wb") as handle:
            np.savez(handle, **arrays)
        hashes = self._hashes(detector)
        hashes[path.name] = sha256_file(path)
        atomic_write_text(self._ledger(detector), dumps(hashes))


def _fold(name: str, params: dict, preprocess: PreprocessOptions, threshold: ThresholdOptions, pre: Preprocessor,
          rows, ends, plan: Plan, k: int, previous) -> Pipeline:
    """Fold ``k``'s pipeline: the scaler and detector fitted on its training windows, the
    threshold rule applied to its validation windows."""
    pipe = Pipeline.from_options(name, preprocess, threshold, params)
    return pipe.fit_rows(pre, rows, ends[plan.train[k]], ends[plan.valid[k]], previous)


def _score_fold(pipe: Pipeline, table: Table, plan: Plan, k: int, carry):
    """Fold ``k``'s test rows scored as the cron line scores them, through the streaming
    engine, with the rows carried since the last fold scored (or every earlier row) as context;
    returns the scores of the windows ``plan.test[k]`` and the carry for the next fold."""
    lo, hi = np.searchsorted(table.time, plan.cuts[k:k + 2], side="left")
    seen = 0 if carry is None or carry.last_time is None else \
        int(np.searchsorted(table.time, carry.last_time, side="right"))
    history = table.subset(slice(seen, lo)) if seen < lo else None
    frame, carry = pipe.score_table(table.subset(slice(max(seen, lo), hi)), carry, history)
    if len(frame) != len(plan.test[k]):
        raise AssertionError(f"fold {k + 1}: the engine scored {len(frame)} windows, the plan has {len(plan.test[k])}")
    return frame["score"].to_numpy(dtype=np.float64), carry


def _fold_problem(plan: Plan, k: int, y: np.ndarray) -> str | None:
    if (y[plan.train[k]] == 0).sum() < 2:
        return "fewer than 2 normal training windows"
    if len(plan.valid[k]) == 0:
        return "no validation windows"
    if len(plan.test[k]) == 0:
        return "no windows to score"
    return None


def backtest(input_path, out_dir, options: BacktestOptions = BacktestOptions(),
             preprocess: PreprocessOptions = PreprocessOptions(), params: dict | None = None,
             threshold: ThresholdOptions = ThresholdOptions(), wait: float = DEFAULT_WAIT, sep: str = ",",
             decimal: str = ".") -> dict:
    """Walk forward through ``input_path`` (CSV read with ``sep`` and ``decimal``, or Parquet);
    write the results into ``out_dir``; return backtest.json."""
    params = {name: dict((params or {}).get(name, {})) for name in options.detectors}
    for name in options.detectors:
        detectors.create(name, **params[name])  # bad options fail before any work
    table = read_table(input_path, preprocess.features, preprocess.drop, labels="required", sep=sep, decimal=decimal,
                       columns=preprocess.columns)
    pre = Preprocessor(preprocess).fit_layout(table, sep, decimal)
    rows = pre.rows(table)
    ends = pre.window_ends(rows)
    end_time, y, event_time = rows.time[ends], rows.y[ends], rows.event_time[ends]
    interval_minutes = pre.interval_minutes
    threshold = threshold.resolved(interval_minutes, preprocess.shift)
    plan = plan_folds(end_time, table.time, pre.interval_, options)
    n_folds = len(plan.test)

    out = Run(out_dir)
    with out.locked(wait, create=True):
        _claim(out.path, _config(input_path, options, preprocess, params, threshold))
        store = FoldStore(out.path)
        started, done, total = time.perf_counter(), 0, n_folds * len(options.detectors)
        skipped: dict[int, str] = {}
        for name in options.detectors:
            previous, carry = None, None
            for k in range(n_folds):
                done += 1
                problem = _fold_problem(plan, k, y)
                if problem:
                    skipped[k] = problem
                    continue
                finished, kept = store.finished(name, k, wait)
                if finished:
                    previous = previous if kept is None else kept
                    continue
                pipe = _fold(name, params[name], preprocess, threshold, pre, rows, ends, plan, k,
                             previous if options.warm_start else None)
                scores, carry = _score_fold(pipe, table, plan, k, carry)
                if not pipe.fitted.detector.saves_with_pickle:  # a plug-in held only by pickle is not kept
                    pipe.save(store.run_dir(name, k), wait=wait)
                previous = pipe.fitted.detector
                store.save(name, k, index=plan.test[k], score=scores, threshold=np.float64(pipe.rule.value))
                elapsed = time.perf_counter() - started
                log.info(f"fold {k + 1}/{n_folds} {name}: cut {plan.cuts[k]}, {len(plan.train[k]):,} train / "
                         f"{len(plan.valid[k]):,} valid / {len(plan.test[k]):,} scored windows; "
                         f"{elapsed:.0f} s elapsed, about {elapsed / done * (total - done):.0f} s left")
        for k, why in sorted(skipped.items()):
            log.warning(f"fold {k + 1}/{n_folds} skipped: {why}")
        pooled = {name: _pooled(store, name, n_folds, skipped) for name in options.detectors}
        report = _report(pooled, plan, end_time, y, event_time, interval_minutes, threshold, options, skipped,
                         labels=preprocess.labels)
        with out.writer("backtest", {"options": asdict(options), "threshold": threshold.recorded()}, inputs={}) as w:
            w.json(BACKTEST_JSON, report)
            _write_csv(w.path(BACKTEST_CSV), pooled, end_time, y, event_time, threshold.merge)
            _figures(w, pooled, plan, end_time, y, event_time, interval_minutes, threshold, report,
                     utc_offset_seconds=None if table.utc_offset is None else int(table.utc_offset[-1]))
    return report


def _pooled(store: FoldStore, name: str, n_folds: int, skipped) -> dict:
    parts = [(k, store.load(name, k)) for k in range(n_folds) if k not in skipped]
    if not parts:
        raise UserError("no fold could be scored: every fold lacked training, validation or test windows; "
                        "use an earlier --start, a longer --train-window or a shorter --valid-window")
    index = np.concatenate([p["index"] for _, p in parts])
    score = np.concatenate([p["score"] for _, p in parts])
    thr = np.concatenate([np.full(len(p["index"]), float(p["threshold"])) for _, p in parts])
    fold = np.concatenate([np.full(len(p["index"]), k) for k, p in parts])
    return {"index": index, "score": score, "threshold": thr, "fold": fold,
            "relative": score / np.maximum(thr, np.finfo(float).tiny), "flag": flag(score, thr)}


def _episode_summary(p: dict, end_time, breaks, interval_minutes, threshold: ThresholdOptions) -> dict:
    return episodes.episode_metrics(end_time[p["index"]], p["flag"], breaks, interval_minutes,
                                    threshold.merge, threshold.horizon)


def _report(pooled: dict, plan: Plan, end_time, y, event_time, interval_minutes: float,
            threshold: ThresholdOptions, options: BacktestOptions, skipped, labels: str = "events") -> dict:
    names = list(pooled)
    common = pooled[names[0]]["index"]
    for name in names[1:]:
        common = np.intersect1d(common, pooled[name]["index"])
    yt, et = y[common], event_time[common]
    breaks = metrics.break_times(yt, et)
    per = {}
    budget = threshold.params.get("target") if threshold.rule == "alarms-per-day" else None
    for name in names:
        p = pooled[name]
        keep = np.isin(p["index"], common)
        sub = {key: value[keep] for key, value in p.items()}
        folds = []
        for k in range(len(plan.test)):
            mask = sub["fold"] == k
            if not mask.any():
                continue
            ep = _episode_summary({"index": sub["index"][mask], "flag": sub["flag"][mask]}, end_time,
                                  metrics.break_times(y[sub["index"][mask]], event_time[sub["index"][mask]]),
                                  interval_minutes, threshold)
            yk = y[sub["index"][mask]]
            both = 0 < yk.sum() < len(yk)
            folds.append({"fold": k + 1, "cut": str(plan.cuts[k]), "threshold": float(sub["threshold"][mask][0]),
                          "windows": int(mask.sum()), "breaks": ep["n_breaks"], "warned": ep["warned"],
                          "false_episodes_per_day": ep["false_episodes_per_day"],
                          "roc_auc": _roc(yk, sub["relative"][mask]) if both else float("nan")})
        ep = _episode_summary(sub, end_time, breaks, interval_minutes, threshold)
        ep.pop("breaks")
        per[name] = {
            "windows": metrics.window_metrics(yt, sub["flag"], sub["relative"]),
            "episodes": ep,
            "budget": {"promised": budget, "measured": ep["false_episodes_per_day"],
                       "ratio": ep["false_episodes_per_day"] / budget if budget else None},
            "folds": folds,
            "warned_chance": evaluation.warned_chance(
                thresholds.Scored(sub["relative"], yt, end_time[common], breaks, interval_minutes, threshold.merge,
                                  threshold.horizon), sub["flag"]),
        }
        if labels == "intervals":
            per[name]["intervals"] = intervals.interval_metrics(yt, sub["flag"], end_time[common])
    scores = {name: pooled[name]["relative"][np.isin(pooled[name]["index"], common)] for name in names}
    boot = bootstrap_metrics(yt, scores, blocks(labels, yt, et, end_time[common]), n=options.replicates,
                             seed=options.seed) if 0 < yt.sum() < len(yt) else None
    report = {
        "package_version": __version__,
        "options": asdict(options),
        "threshold": threshold.recorded(),
        "interval_minutes": interval_minutes,
        "folds": len(plan.test),
        "skipped_folds": {str(k + 1): why for k, why in skipped.items()},
        "scored": {"windows": int(len(common)), "breaks": int(len(breaks)),
                   "days": metrics.days_covered(len(common), interval_minutes)},
        "detectors": per,
        "bootstrap": boot,
    }
    report["verdict"] = {name: verdict_of(name, report) for name in names}
    report["verdicts"] = {name: verdicts.one_line(report["verdict"][name], name) for name in names}
    return to_jsonable(report)


def _roc(y, score) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def verdict_of(name: str, report: dict) -> dict:
    """The verdict (:mod:`lstm_rare_event.alarms.verdict`) on one detector's pooled folds."""
    d = report["detectors"][name]
    boot = report.get("bootstrap")
    roc, references = None, {}
    if boot:
        roc = boot["detectors"][name]["roc_auc"]
        for diff in boot["differences"]:
            if name not in (diff["a"], diff["b"]):
                continue
            r = diff["roc_auc"]
            if diff["a"] == name:
                references[diff["b"]] = r
            else:  # b - a: turn it round to this detector minus the other
                references[diff["a"]] = {"estimate": -r["estimate"], "low": -r["high"], "high": -r["low"],
                                         "excludes_zero": r["excludes_zero"]}
    return verdicts.verdict(roc=roc, promised=d["budget"]["promised"], measured=d["budget"]["measured"],
                            episodes=d["episodes"], references=references, warned_chance=d.get("warned_chance"),
                            intervals=d.get("intervals"))


def verdict(name: str, report: dict) -> str:
    """One line an operator can act on, worded as evaluate's verdict."""
    return verdicts.one_line(verdict_of(name, report), name)


def _write_csv(path: Path, pooled: dict, end_time, y, event_time, merge_minutes: float) -> None:
    """One row per scored window and detector; ``break_time`` is the break a positive window
    precedes (empty for normal windows), so results can be resampled by break event."""
    import pandas as pd

    frames = []
    for name, p in pooled.items():
        # The folds' windows follow each other in time: one numbering runs through them all.
        ep = number_episodes(end_time[p["index"]], p["flag"], merge_minutes)
        frames.append(pd.DataFrame({
            "time": np.datetime_as_string(end_time[p["index"]], unit="s"), "fold": p["fold"] + 1,
            "detector": name, "score": p["score"], "threshold": p["threshold"], "flag": p["flag"].astype(int),
            "episode": ep.number, "label": y[p["index"]],
            "break_time": np.where(y[p["index"]] == 1, np.datetime_as_string(event_time[p["index"]], unit="s"), ""),
        }))
    pd.concat(frames).to_csv(path, index=False, lineterminator="\n")


def _figures(w, pooled, plan: Plan, end_time, y, event_time, interval_minutes, threshold: ThresholdOptions,
             report: dict, utc_offset_seconds: int | None = None) -> None:
    boundaries = [(c, "fold boundary") for c in plan.cuts[:-1]]
    first = next(iter(pooled))
    p = pooled[first]
    t = end_time[p["index"]]
    ep = number_episodes(t, p["flag"], threshold.merge)
    breaks = metrics.break_times(y[p["index"]], event_time[p["index"]])
    warned, lead, _ = episodes.warned_breaks(ep, breaks, threshold.horizon)
    plots.alarm_timeline(t, p["relative"], 1.0, w.path(BACKTEST_TIMELINE_PNG),
                         episodes=list(zip(ep.start, ep.end)),
                         breaks=[{"time": b, "warned": bool(ok), "lead_minutes": None if np.isnan(m) else float(m)}
                                 for b, ok, m in zip(breaks, warned, lead)],
                         boundaries=boundaries, title=f"Backtest, {first}: score / fold threshold",
                         ylabel="score / threshold", utc_offset_seconds=utc_offset_seconds)
    budget = threshold.params.get("target") if threshold.rule == "alarms-per-day" else None
    per_fold = {name: np.array([f["false_episodes_per_day"] if f["false_episodes_per_day"] is not None else np.nan
                                for f in report["detectors"][name]["folds"]], dtype=float) for name in pooled}
    labels = [str(f["fold"]) for f in report["detectors"][first]["folds"]]
    plots.fold_budget(labels, per_fold, budget, w.path(BACKTEST_FOLDS_PNG),
                      title="False alarm episodes per day, per fold")
    curves = {}
    for name, q in pooled.items():
        tq = end_time[q["index"]]
        curves[name] = episodes.warning_curve(q["relative"], tq, metrics.break_times(y[q["index"]], event_time[q["index"]]),
                                              interval_minutes, threshold.merge, threshold.horizon)
    plots.warning_curve(curves, w.path(BACKTEST_WARNING_PNG), budget=budget,
                        title=f"Breaks warned {threshold.horizon:g} min ahead against false alarms")


def backtest_text(report: dict) -> str:
    rows = [["detector", "ROC-AUC", "PR-AUC", "breaks warned", "by chance", "alarm on", "mean lead, min",
             "false episodes / day", "budget"]]
    by_interval = [["detector", "F1", "FAR", "MAR", "intervals detected", "by chance", "mean delay, min"]]
    for name, d in report["detectors"].items():
        w, e, b, c = d["windows"], d["episodes"], d["budget"], d.get("warned_chance", {})
        rows.append([name, w["roc_auc"], w["pr_auc"], f"{e['warned']} of {e['n_breaks']}", c.get("warned_share_chance"),
                     c.get("alarm_on_share"), e["mean_lead_minutes"], e["false_episodes_per_day"], b["promised"]])
        if "intervals" in d:
            i = d["intervals"]
            by_interval.append([name, i["f1"], i["far"], i["mar"], f"{i['detected']} of {i['n_intervals']}",
                                i["detected_share_chance"], i["mean_delay_minutes"]])
    s = report["scored"]
    head = (f"{report['folds']} folds, {s['windows']:,} windows scored over {s['days']:.1f} days, "
            f"{s['breaks']} breaks; horizon {report['threshold']['horizon']:g} min, "
            f"episodes merged < {report['threshold']['merge']:g} min apart")
    tables = [format_table(rows)] + ([format_table(by_interval)] if len(by_interval) > 1 else [])
    return "\n".join([head, *tables, "", *report["verdicts"].values()])

"""The ``evaluate`` step: apply threshold.json to the test split, for any detector."""

from __future__ import annotations

import numpy as np

from lstm_rare_event import log
from lstm_rare_event.alarms import evaluation, metrics, plots, verdict
from lstm_rare_event.alarms.bootstrap import blocks, bootstrap_metrics
from lstm_rare_event.alarms.rule import smooth_parts, smoothing
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import to_jsonable
from lstm_rare_event.preprocess.preprocessor import no_window_line
from lstm_rare_event.run import (
    DEFAULT_WAIT, DETECTOR, EVALUATE_JSON, HISTOGRAM_PNG, HISTORY_CSV, PREPARE_JSON, ROC_PR_PNG,
    THRESHOLD_JSON, TIMELINE_PNG, Run, split_files,
)
from lstm_rare_event.steps.threshold import episode_rows, rule_text
from lstm_rare_event.tables import format_table


REPLICATES = 1000


def run_evaluate(run_dir, engine: str | None = None, wait: float = DEFAULT_WAIT, reference=None,
                 replicates: int = REPLICATES, allow_pickle: bool = False) -> dict:
    """Apply threshold.json to the test split; write evaluate.json and three figures; return the report.

    ``reference``: another run directory trained on the same prepared split (``train --out``);
    the verdict then says whether this run's detector ranks breaks better than its detector.
    """
    run = Run(run_dir)
    with run.locked(wait):
        run.check("prepare", [*split_files("test"), PREPARE_JSON])
        run.check("train", [DETECTOR])
        run.check("threshold", [THRESHOLD_JSON])
        chosen = run.threshold()
        interval = run.interval_minutes()
        test = run.split("test")
        detector = run.detector(engine=engine, allow_pickle=allow_pickle)
        log.info(f"{detector.name} scores of {len(test):,} test windows")
        scores = detector.score(test)
        if chosen.smooth > 1:
            scores = _smoothed(run, detector, test, scores, chosen.smooth)
        s = evaluation.scored(scores, test, interval, chosen.merge_minutes, chosen.horizon_minutes)
        labels = run.label_mode()
        report = {
            "threshold": {"rule": chosen.rule, "params": chosen.params, "value": chosen.value,
                          "merge_minutes": chosen.merge_minutes, "horizon_minutes": chosen.horizon_minutes,
                          **smoothing(chosen.smooth)},
            "detector": detector.name,
            "engine": detector.engine,
            "interval_minutes": interval,
            **evaluation.evaluate_scores(s, test, {"value": chosen.value, "budgets": chosen.data.get("budgets", [])},
                                         labels),
        }
        judged = run.prepare_info().data.get("coverage", {}).get("judged")
        if judged is not None:  # runs prepared before prepare counted them have no figure
            report["coverage"] = judged
            line, large = no_window_line(judged, "judged (test) rows")
            (log.warning if large else log.info)(f"{run_dir}: {line}")
        reference_scores = _reference_scores(run, reference, test, allow_pickle) if reference is not None else None
        report["verdict"] = _verdict(run, detector.name, scores, test, chosen, report, reference_scores,
                                     replicates)
        windows = report["windows"]
        log.info(f"writing {EVALUATE_JSON}, {TIMELINE_PNG}, {ROC_PR_PNG} and {HISTOGRAM_PNG}")
        with run.writer("evaluate", {"engine": detector.engine}) as out:
            out.json(EVALUATE_JSON, report)
            ep = chosen.alarm_rule.episodes(test.end_time, scores)
            plots.alarm_timeline(test.end_time, scores, chosen.value, out.path(TIMELINE_PNG),
                                 episodes=list(zip(ep.start, ep.end)),
                                 breaks=[{"time": b["event_time"], "warned": b["warned"],
                                          "lead_minutes": b["lead_minutes"]} for b in report["episodes"]["breaks"]],
                                 title=f"Test split: {detector.name} scores, alarm episodes and breaks "
                                       f"(warned within {chosen.horizon_minutes:g} min)",
                                 utc_offset_seconds=run.utc_offset_seconds())
            plots.roc_pr(metrics.curves(test.y, scores), windows["roc_auc"], windows["pr_auc"], windows["base_rate"],
                         out.path(ROC_PR_PNG), title=f"Test split: {detector.name} score",
                         operating_point={"fpr": windows["false_positive_rate"], "tpr": windows["recall"],
                                          "precision": windows["precision"], "recall": windows["recall"]})
            plots.error_histogram(scores, test.y, chosen.value, out.path(HISTOGRAM_PNG))
    return report


def _smoothed(run: Run, detector, test, scores, k: int) -> np.ndarray:
    """The test ``scores`` smoothed as ``score`` smooths them: the first test windows after the
    last k - 1 validation windows (the split before test, scored again for this)."""
    valid = run.split("valid")
    before = valid.subset(slice(max(len(valid) - (k - 1), 0), None))
    return smooth_parts(k, [(detector.score(before), before.end_time, before.segment_start),
                            (scores, test.end_time, test.segment_start)])[1]


def _reference_scores(run: Run, reference, test, allow_pickle: bool = False) -> tuple[str, np.ndarray]:
    """(name, test scores) of the detector in ``reference``, which must share this run's test split."""
    other = Run(reference)
    with other.reading():
        other.check("train", [DETECTOR])
        mine = run.split_digest("test")
        theirs = other.split_digest("test")
        if mine is None or mine != theirs:
            raise UserError(f"--reference {other.path}: its test split differs from {run.path}'s; give a run made "
                            "from the same prepare (train --out)")
        detector = other.detector(allow_pickle=allow_pickle)
        log.info(f"reference {detector.name} ({other.path}): scores of {len(test):,} test windows")
        return detector.name, detector.score(test)


def _drift(run: Run) -> dict | None:
    """The drift warning from the training history (detectors that have one), with the sensors
    whose scaled last-row mean moved most from the training to the validation windows."""
    if HISTORY_CSV not in run.files_of("train"):
        return None
    import pandas as pd

    run.check("train", [HISTORY_CSV])
    history = pd.read_csv(run.path / HISTORY_CSV)
    if history.empty or not {"loss", "val_loss"} <= set(history.columns):
        return None
    last = history.iloc[-1]
    loss, val_loss = float(last["loss"]), float(last["val_loss"])
    if verdict.drift(loss, val_loss) is None:
        return None
    train, valid = run.split("train"), run.split("valid")
    features = run.prepare_info().data.get("features") or [f"sensor {i + 1}" for i in range(train.X.shape[2])]
    shifts = verdict.sensor_shifts(train.X[train.y == 0, -1, :], valid.X[valid.y == 0, -1, :], features)
    return verdict.drift(loss, val_loss, shifts)


def _verdict(run: Run, name: str, scores, test, chosen, report: dict, reference_scores, replicates: int) -> dict:
    both = 0 < int(np.sum(test.y == 1)) < len(test.y)
    roc, references, boot = None, {}, None
    if both:
        named = {name: scores}
        if reference_scores is not None:
            other = reference_scores[0] if reference_scores[0] != name else f"{reference_scores[0]} (reference)"
            named[other] = reference_scores[1]
        groups = blocks(run.label_mode(), test.y, test.event_time, test.end_time)
        boot = bootstrap_metrics(test.y, named, groups, n=replicates, seed=0)
        roc = boot["detectors"][name]["roc_auc"]
        references = {d["b"]: d["roc_auc"] for d in boot["differences"]}
    promised = chosen.params.get("target") if chosen.rule == "alarms-per-day" else None
    result = verdict.verdict(roc=roc, promised=promised, measured=report["episodes"]["false_episodes_per_day"],
                             episodes=report["episodes"], references=references, drift_=_drift(run),
                             warned_chance=report["warned_chance"], intervals=report.get("intervals"))
    if boot is not None:
        result["bootstrap"] = {"replicates": boot["replicates"], "seed": boot["seed"], "blocks": boot["blocks"]}
    return to_jsonable(result)


def verdict_text(report: dict) -> str:
    return "\n".join(report.get("verdict", {}).get("lines", []))


def chance_rows(c: dict, what: str) -> list[list]:
    """An event-level share beside chance (the same alarms shifted in time) and the alarm on-time."""
    share, by_chance = (c["warned_share"], c["warned_share_chance"]) if "warned_share" in c else \
        (c["detected_share"], c["detected_share_chance"])
    return [[f"{what}, share", share],
            [f"{what} by chance (the alarms shifted in time)", by_chance],
            ["alarm on (share of windows flagged)", c["alarm_on_share"]]]


def interval_rows(i: dict) -> list[list]:
    return [
        ["anomaly intervals (runs of labelled windows)"],
        ["point-wise F1 / FAR / MAR", f"{_g(i['f1'])} / {_g(i['far'])} / {_g(i['mar'])}"],
        ["intervals detected (a window flagged inside)", f"{i['detected']} of {i['n_intervals']}"],
        *chance_rows(i, "intervals detected"),
        ["detection delay, minutes: mean / median", f"{_g(i['mean_delay_minutes'])} / {_g(i['median_delay_minutes'])}"],
    ]


def _g(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4g}"


def evaluate_text(report: dict) -> str:
    """The evaluate step's result: window metrics, breaks and episodes, then the alarm budgets."""
    w, e, chosen = report["windows"], report["events"], report["threshold"]
    c = w["confusion"]
    main = format_table([
        ["detector", report["detector"]],
        ["threshold", chosen["value"]],
        ["rule", rule_text(chosen)],
        [f"test windows: {w['n_windows']:,}, {w['n_positive']:,} positive, {e['days']:.4g} days"],
        ["TN / FP / FN / TP", f"{c['tn']:,} / {c['fp']:,} / {c['fn']:,} / {c['tp']:,}"],
        ["precision", w["precision"]],
        ["recall", w["recall"]],
        ["F1", w["f1"]],
        ["false-positive rate", w["false_positive_rate"]],
        ["ROC-AUC", w["roc_auc"]],
        ["PR-AUC (average precision)", w["pr_auc"]],
        ["base rate (PR-AUC by chance)", w["base_rate"]],
        *(interval_rows(report["intervals"]) if "intervals" in report else [
            ["breaks (events)"],
            ["breaks caught (a positive window flagged)", f"{e['caught']} of {e['n_breaks']}"],
            ["false alarm windows per day", e["false_alarms_per_day"]],
            *episode_rows(report["episodes"]),
            *chance_rows(report["warned_chance"], "breaks warned"),
        ]),
    ])
    rows = report["alarm_budgets"]["rows"]
    tail = f"\n\nVerdict:\n{verdict_text(report)}" if report.get("verdict", {}).get("lines") else ""
    if not rows:
        return main + tail
    budgets = format_table([
        ["budget / day", "threshold", "false episodes / day on test", "breaks warned", "mean lead, min"],
        *[[r["alarms_per_day"], r["value"], r["false_episodes_per_day"], f"{r['warned']} of {r['n_breaks']}",
           r["mean_lead_minutes"]] for r in rows],
    ])
    return (f"{main}\n\nAlarm budgets (thresholds chosen on validation with --rule alarms-per-day, "
            f"applied to test):\n{budgets}{tail}")

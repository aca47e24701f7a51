"""The ``evaluate`` step: apply threshold.json to the test split, for any detector."""

from __future__ import annotations

from lstm_rare_event import log
from lstm_rare_event.alarms import evaluation, metrics, plots
from lstm_rare_event.run import (
    DEFAULT_WAIT, DETECTOR, EVALUATE_JSON, HISTOGRAM_PNG, PREPARE_JSON, ROC_PR_PNG, SPLIT_FILES, THRESHOLD_JSON,
    TIMELINE_PNG, Run,
)
from lstm_rare_event.steps.threshold import episode_rows, rule_text
from lstm_rare_event.tables import format_table


def run_evaluate(run_dir, engine: str = "numpy", wait: float = DEFAULT_WAIT) -> dict:
    """Apply threshold.json to the test split; write evaluate.json and three figures; return the report."""
    run = Run(run_dir)
    with run.locked(wait):
        run.check("prepare", [SPLIT_FILES["test"], PREPARE_JSON])
        run.check("train", [DETECTOR])
        run.check("threshold", [THRESHOLD_JSON])
        chosen = run.threshold()
        interval = run.interval_minutes()
        test = run.split("test")
        detector = run.detector(engine=engine)
        log.info(f"{detector.name} scores of {len(test):,} test windows")
        scores = detector.score(test)
        s = evaluation.scored(scores, test, interval, chosen.merge_minutes, chosen.horizon_minutes)
        report = {
            "threshold": {"rule": chosen.rule, "params": chosen.params, "value": chosen.value,
                          "merge_minutes": chosen.merge_minutes, "horizon_minutes": chosen.horizon_minutes},
            "detector": detector.name,
            "engine": engine,
            "interval_minutes": interval,
            **evaluation.evaluate_scores(s, test, {"value": chosen.value, "budgets": chosen.data.get("budgets", [])}),
        }
        windows = report["windows"]
        log.info(f"writing {EVALUATE_JSON}, {TIMELINE_PNG}, {ROC_PR_PNG} and {HISTOGRAM_PNG}")
        with run.writer("evaluate", {"engine": engine}) as out:
            out.json(EVALUATE_JSON, report)
            plots.error_timeline(test.end_time, scores, test.y, metrics.break_times(test.y, test.event_time),
                                 chosen.value, out.path(TIMELINE_PNG))
            plots.roc_pr(metrics.curves(test.y, scores), windows["roc_auc"], windows["pr_auc"], windows["base_rate"],
                         out.path(ROC_PR_PNG))
            plots.error_histogram(scores, test.y, chosen.value, out.path(HISTOGRAM_PNG))
    return report


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
        ["breaks (events)"],
        ["breaks caught (a positive window flagged)", f"{e['caught']} of {e['n_breaks']}"],
        ["false alarm windows per day", e["false_alarms_per_day"]],
        *episode_rows(report["episodes"]),
    ])
    rows = report["alarm_budgets"]["rows"]
    if not rows:
        return main
    budgets = format_table([
        ["budget / day", "threshold", "false episodes / day on test", "breaks warned", "mean lead, min"],
        *[[r["alarms_per_day"], r["value"], r["false_episodes_per_day"], f"{r['warned']} of {r['n_breaks']}",
           r["mean_lead_minutes"]] for r in rows],
    ])
    return (f"{main}\n\nAlarm budgets (thresholds chosen on validation with --rule alarms-per-day, "
            f"applied to test):\n{budgets}")

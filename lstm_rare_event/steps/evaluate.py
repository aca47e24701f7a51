"""The ``threshold`` and ``evaluate`` steps: read the run directory, compute, write, report.

``threshold`` looks at the validation split only and saves the rule, its value and the error
definition in threshold.json; ``evaluate`` applies exactly that to the test split. Both refuse
files that do not come from one run (:func:`artifacts.verify`).
"""

from __future__ import annotations

from pathlib import Path

from lstm_rare_event import log
from lstm_rare_event.alarms import metrics, plots, thresholds
from lstm_rare_event.run import Writer, check_run, read_json, to_jsonable
from lstm_rare_event.detectors.lstm_ae.numpy_engine import model_file
from lstm_rare_event.errors import UserError
from lstm_rare_event.steps.prepare import PREPARE_JSON
from lstm_rare_event.reconstruction import compute_errors
from lstm_rare_event.tables import format_table
from lstm_rare_event.alarms.thresholds import THRESHOLD_JSON
from lstm_rare_event.preprocess.windows import load_split, split_file

EVALUATE_JSON = "evaluate.json"
THRESHOLD_PNG = "threshold.png"
TIMELINE_PNG = "error_timeline.png"
ROC_PR_PNG = "roc_pr.png"
HISTOGRAM_PNG = "error_hist.png"
# False alarms per day an operator might accept; thresholds for them are chosen on validation.
BUDGETS = (1.0, 5.0)
BUDGET_BASIS = ("threshold chosen on the validation split with --rule alarms-per-day --target BUDGET, "
                "applied unchanged to test: deployable, not an oracle; the test rate can differ")


def _checked_inputs(run_dir: Path, split: str, engine: str, extra=()) -> list[str]:
    """The run files a step reads, after checking they exist and come from this run."""
    return check_run(run_dir, {
        "prepare": [PREPARE_JSON, split_file(split)],
        "train": [model_file(engine)],
        "threshold": list(extra),
    })


def read_interval_minutes(run_dir: Path) -> float:
    run_dir = Path(run_dir)
    value = read_json(run_dir / PREPARE_JSON).get("interval_minutes")
    if not isinstance(value, (int, float)) or not value > 0:
        raise UserError(f"{run_dir / PREPARE_JSON}: 'interval_minutes' must be a positive number, got {value!r}; "
                        "re-run prepare")
    return float(value)


def choose_on_validation(errors, valid, interval: float, rule: str, params: dict) -> dict:
    """The threshold ``rule`` picks from the validation scores, the validation metrics at it,
    and the alarm-budget thresholds; pure, so model errors and reference scores share it."""
    value = thresholds.choose_threshold(rule, errors, valid.y, interval, **params)
    flags = thresholds.flag(errors, value)
    has_normal = bool((valid.y == 0).any())
    return {
        "value": value,
        "validation": {
            **metrics.window_metrics(valid.y, flags),
            "false_alarms_per_day": metrics.false_alarms_per_day(flags, valid.y, interval),
        },
        "budgets": [
            {"alarms_per_day": budget,
             "value": thresholds.choose_threshold("alarms-per-day", errors, valid.y, interval, target=budget)}
            for budget in BUDGETS if has_normal
        ],
    }


def evaluate_scores(errors, test, chosen: dict, interval: float) -> dict:
    """Window metrics, break events and alarm-budget rows of the test scores under ``chosen``
    (a threshold.json or :func:`choose_on_validation` result); pure."""
    flags = thresholds.flag(errors, chosen["value"])
    return {
        "windows": metrics.window_metrics(test.y, flags, errors),
        "events": metrics.event_metrics(flags, test.y, test.end_time, test.event_time, interval),
        "alarm_budgets": {
            "basis": BUDGET_BASIS,
            "rows": [_budget_row(budget, errors, test, interval) for budget in chosen.get("budgets", [])],
        },
    }


def report_from_errors(valid_errors, valid, test_errors, test, interval: float, rule: str = "alarms-per-day",
                       params: dict | None = None) -> dict:
    """``threshold`` then ``evaluate`` in memory, for any score where higher means an alarm
    (never negative: the rules treat 0 as the floor): the evaluate.json structure, without the
    model fields, plus the validation metrics."""
    params = thresholds.resolve_params(rule, **(params or {}))
    chosen = choose_on_validation(valid_errors, valid, interval, rule, params)
    return to_jsonable({
        "threshold": {"rule": rule, "params": params, "value": chosen["value"]},
        "interval_minutes": interval,
        "validation": chosen["validation"],
        **evaluate_scores(test_errors, test, chosen, interval),
    })


def run_threshold(run_dir, rule: str = "alarms-per-day", params: dict | None = None, error: str = "mean",
                  engine: str = "numpy") -> dict:
    """Choose the threshold on validation; write threshold.json and threshold.png; return the summary."""
    run_dir = Path(run_dir)
    params = thresholds.resolve_params(rule, **(params or {}))  # bad options fail before any work
    names = _checked_inputs(run_dir, "valid", engine)
    interval = read_interval_minutes(run_dir)
    valid = load_split(run_dir, "valid")
    thresholds.check_labels(rule, valid.y)  # before the model runs, not after
    log.info(f"reconstruction error ({error}) of {len(valid):,} validation windows, {engine} engine")
    errors, _ = compute_errors(run_dir, valid, error, engine)
    chosen = choose_on_validation(errors, valid, interval, rule, params)
    value = chosen["value"]
    summary = to_jsonable({
        "rule": rule,
        "params": params,
        "value": value,
        "error": error,
        "engine": engine,
        "interval_minutes": interval,
        "validation": chosen["validation"],
        "budgets": chosen["budgets"],
    })
    log.info(f"threshold {value:.6g} (--rule {rule}); writing {THRESHOLD_JSON} and {THRESHOLD_PNG}")
    options = {"rule": rule, "params": params, "error": error, "engine": engine}
    with Writer(run_dir, step="threshold", inputs=names, options=options) as out:
        out.json(THRESHOLD_JSON, summary)
        plots.threshold_curve(*thresholds.precision_recall_by_threshold(errors, valid.y), value,
                              out.path(THRESHOLD_PNG), title=f"Validation: --rule {rule}")
    return summary


def _budget_row(budget: dict, errors, test, interval: float) -> dict:
    flags = thresholds.flag(errors, budget["value"])
    events = metrics.event_metrics(flags, test.y, test.end_time, test.event_time, interval)
    return {
        "alarms_per_day": budget["alarms_per_day"],
        "value": budget["value"],
        "false_alarms_per_day": events["false_alarms_per_day"],
        "caught": events["caught"],
        "n_breaks": events["n_breaks"],
        "mean_lead_minutes": events["mean_lead_minutes"],
    }


def run_evaluate(run_dir, engine: str = "numpy") -> dict:
    """Apply threshold.json to the test split; write evaluate.json and three figures; return the report."""
    run_dir = Path(run_dir)
    names = _checked_inputs(run_dir, "test", engine, extra=[THRESHOLD_JSON])
    chosen = thresholds.read_threshold(run_dir)
    interval = read_interval_minutes(run_dir)
    test = load_split(run_dir, "test")
    log.info(f"reconstruction error ({chosen['error']}) of {len(test):,} test windows, {engine} engine")
    errors, _ = compute_errors(run_dir, test, chosen["error"], engine)
    scored = evaluate_scores(errors, test, chosen, interval)
    windows = scored["windows"]
    report = to_jsonable({
        "threshold": {key: chosen.get(key) for key in ("rule", "params", "value", "error", "engine")},
        "engine": engine,
        "interval_minutes": interval,
        **scored,
    })
    log.info(f"writing {EVALUATE_JSON}, {TIMELINE_PNG}, {ROC_PR_PNG} and {HISTOGRAM_PNG}")
    with Writer(run_dir, step="evaluate", inputs=names, options={"engine": engine}) as out:
        out.json(EVALUATE_JSON, report)
        plots.error_timeline(test.end_time, errors, test.y, metrics.break_times(test.y, test.event_time),
                             chosen["value"], out.path(TIMELINE_PNG))
        plots.roc_pr(metrics.curves(test.y, errors), windows["roc_auc"], windows["pr_auc"], windows["base_rate"],
                     out.path(ROC_PR_PNG))
        plots.error_histogram(errors, test.y, chosen["value"], out.path(HISTOGRAM_PNG))
    return report


def _rule_text(chosen: dict) -> str:
    params = ", ".join(f"{name} {value:g}" for name, value in (chosen.get("params") or {}).items())
    return f"{chosen['rule']} ({params})" if params else str(chosen["rule"])


def threshold_text(summary: dict) -> str:
    """The threshold step's result as an aligned table."""
    v = summary["validation"]
    c = v["confusion"]
    return format_table([
        ["threshold", summary["value"]],
        ["rule", _rule_text(summary)],
        ["error", f"{summary['error']} ({summary['engine']} engine)"],
        [f"on validation: {v['n_windows']:,} windows, {v['n_positive']:,} positive"],
        ["alarms (true / false)", f"{c['tp']:,} / {c['fp']:,}"],
        ["precision", v["precision"]],
        ["recall", v["recall"]],
        ["F1", v["f1"]],
        ["false alarms per day", v["false_alarms_per_day"]],
    ])


def evaluate_text(report: dict) -> str:
    """The evaluate step's result: window metrics, breaks, then the alarm budgets."""
    w, e, chosen = report["windows"], report["events"], report["threshold"]
    c = w["confusion"]
    caught = f"{e['caught']} of {e['n_breaks']}"
    main = format_table([
        ["threshold", chosen["value"]],
        ["rule", f"{_rule_text(chosen)}, error {chosen['error']}"],
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
        ["breaks caught", caught],
        ["mean lead time, minutes", e["mean_lead_minutes"]],
        ["false alarms per day", e["false_alarms_per_day"]],
    ])
    rows = report["alarm_budgets"]["rows"]
    if not rows:
        return main
    budgets = format_table([
        ["budget / day", "threshold", "false alarms / day on test", "breaks caught", "mean lead, min"],
        *[[r["alarms_per_day"], r["value"], r["false_alarms_per_day"], f"{r['caught']} of {r['n_breaks']}",
           r["mean_lead_minutes"]] for r in rows],
    ])
    return (f"{main}\n\nAlarm budgets (thresholds chosen on validation with --rule alarms-per-day, "
            f"applied to test):\n{budgets}")

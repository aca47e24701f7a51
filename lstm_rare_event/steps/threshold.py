"""The ``threshold`` step: choose the alarm threshold on the validation split.

Saves the rule, its value, and how alarms are counted (the episode merge gap and the warning
horizon) in threshold.json; every later step reads them from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lstm_rare_event import log
import numpy as np

from lstm_rare_event.alarms import evaluation, plots, thresholds
from lstm_rare_event.alarms.episodes import DEFAULT_MERGE_MINUTES, false_episodes_by_cut
from lstm_rare_event.alarms.metrics import days_covered
from lstm_rare_event.errors import UserError
from lstm_rare_event.run import (
    DEFAULT_WAIT, DETECTOR, PREPARE_JSON, THRESHOLD_JSON, THRESHOLD_PNG, Run, split_files,
)
from lstm_rare_event.tables import format_table


@dataclass(frozen=True)
class ThresholdOptions:
    """How the threshold is chosen and how alarms are counted.

    ``horizon`` None: the label shift in minutes (shift rows x the cadence), the warning the
    labels themselves ask for; operators ask for 30 or 60.
    """

    rule: str = "alarms-per-day"
    params: dict = field(default_factory=dict)
    merge: float = DEFAULT_MERGE_MINUTES
    horizon: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "params", thresholds.resolve_params(self.rule, **self.params))
        if not (math.isfinite(self.merge) and self.merge >= 0):
            raise UserError(f"--merge must be 0 or more minutes, got {self.merge:g}")
        if self.horizon is not None and not (math.isfinite(self.horizon) and self.horizon > 0):
            raise UserError(f"--horizon must be a positive number of minutes, got {self.horizon:g}")


def default_horizon(run: Run) -> float:
    info = run.prepare_info()
    shift = info.mapping("options").integer("shift", lambda v: v >= 0, "0 or more")
    interval = info.number("interval_minutes", lambda v: v > 0, "a positive number")
    return max(shift, 1) * interval


def run_threshold(run_dir, options: ThresholdOptions = ThresholdOptions(), engine: str = "numpy",
                  wait: float = DEFAULT_WAIT) -> dict:
    """Choose the threshold on validation; write threshold.json and threshold.png; return the summary."""
    run = Run(run_dir)
    with run.locked(wait):
        on_train = options.params.get("on") == "train"
        run.check("prepare", [*split_files("valid", *(["train"] if on_train else [])), PREPARE_JSON])
        run.check("train", [DETECTOR])
        interval = run.interval_minutes()
        horizon = options.horizon if options.horizon is not None else default_horizon(run)
        valid = run.split("valid")
        thresholds.check_labels(options.rule, valid.y)  # before the detector runs, not after
        detector = run.detector(engine=engine)
        log.info(f"{detector.name} scores of {len(valid):,} validation windows")
        train_normal = None
        if on_train:
            train = run.split("train")
            log.info(f"{detector.name} scores of {len(train):,} training windows (--on train)")
            train_normal = detector.score(train)[np.asarray(train.y) == 0]
        scored = evaluation.scored(detector.score(valid), valid, interval, options.merge, horizon, train_normal)
        chosen = evaluation.choose_on_validation(scored, options.rule, options.params)
        summary = {
            "rule": options.rule,
            "params": options.params,
            "value": chosen["value"],
            "merge_minutes": options.merge,
            "horizon_minutes": horizon,
            "detector": detector.name,
            "engine": engine,
            "interval_minutes": interval,
            "validation": chosen["validation"],
            "budgets": chosen["budgets"],
            **{key: chosen[key] for key in ("tail", "note") if key in chosen},
        }
        if "note" in summary:
            log.warning(summary["note"])
        warning = value_warning(options.rule, chosen["value"], summary["validation"])
        if warning:
            summary["warning"] = warning
        log.info(f"threshold {chosen['value']:.6g} (--rule {options.rule}); writing {THRESHOLD_JSON} and {THRESHOLD_PNG}")
        step_options = {"rule": options.rule, "params": options.params, "merge": options.merge,
                        "horizon": horizon, "engine": engine}
        with run.writer("threshold", step_options) as out:
            out.json(THRESHOLD_JSON, summary)
            cuts, precision, recall = thresholds.precision_recall_by_threshold(scored.scores, valid.y)
            per_day = false_episodes_by_cut(scored.scores, scored.end_time, scored.break_times, options.merge, horizon,
                                            cuts) / max(days_covered(len(valid), interval), 1e-12)
            plots.threshold_curve(cuts, precision, recall, chosen["value"], out.path(THRESHOLD_PNG),
                                  false_alarms_per_day=per_day,
                                  budget=options.params.get("target") if options.rule == "alarms-per-day" else None,
                                  title=f"Validation: {detector.name} score, --rule {rule_text(summary)}",
                                  xlabel=f"threshold on the {detector.name} score",
                                  alarms_label="false alarm episodes per day")
    if warning:  # once the threshold is saved
        log.warning(warning)
    return summary


# --rule value warns when its threshold flags more than this share of the validation windows.
VALUE_WARNING_SHARE = 0.1


def value_warning(rule: str, value: float, validation: dict) -> str | None:
    """With ``--rule value``: a warning when the value flags more than VALUE_WARNING_SHARE of the
    validation windows (a fixed value from another run or detector rarely fits this one)."""
    if rule != "value":
        return None
    c = validation["confusion"]
    share = (c["tp"] + c["fp"]) / max(validation["n_windows"], 1)
    if share <= VALUE_WARNING_SHARE:
        return None
    per_day = validation["episodes"].get("false_episodes_per_day")
    rate = f", {per_day:.3g} false alarm episodes per day" if per_day is not None and np.isfinite(per_day) else ""
    return (f"--value {value:g} flags {share:.0%} of validation windows{rate}; the default --rule alarms-per-day "
            "keeps false alarms within a budget")


def rule_text(chosen: dict) -> str:
    params = ", ".join(f"{name} {value:g}" if isinstance(value, (int, float)) else f"{name} {value}"
                       for name, value in (chosen.get("params") or {}).items())
    return f"{chosen['rule']} ({params})" if params else str(chosen["rule"])


def episode_rows(e: dict) -> list[list]:
    return [
        [f"breaks warned (episode starts <= {e['horizon_minutes']:g} min ahead)", f"{e['warned']} of {e['n_breaks']}"],
        ["mean lead time, minutes", e["mean_lead_minutes"]],
        [f"alarm episodes (merged < {e['merge_minutes']:g} min apart)", e["episodes"]],
        ["false alarm episodes per day", e["false_episodes_per_day"]],
    ]


def threshold_text(summary: dict) -> str:
    v = summary["validation"]
    c = v["confusion"]
    return format_table([
        ["threshold", summary["value"]],
        ["rule", rule_text(summary)],
        ["detector", f"{summary['detector']} ({summary['engine']} engine)"],
        [f"on validation: {v['n_windows']:,} windows, {v['n_positive']:,} positive"],
        ["alarms (true / false)", f"{c['tp']:,} / {c['fp']:,}"],
        ["precision", v["precision"]],
        ["recall", v["recall"]],
        ["F1", v["f1"]],
        ["false alarm windows per day", v["false_alarms_per_day"]],
        *episode_rows(v["episodes"]),
    ]) + (f"\nNote: {summary['note']}" if summary.get("note") else "")

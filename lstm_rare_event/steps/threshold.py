"""The ``threshold`` step: choose the alarm threshold on the validation split.

Saves the rule, its value, and how alarms are counted (the episode merge gap and the warning
horizon) in threshold.json; every later step reads them from there.
"""

from __future__ import annotations

from typing import NamedTuple

from lstm_rare_event import log
import numpy as np

from lstm_rare_event.alarms import evaluation, plots, thresholds
from lstm_rare_event.alarms.rule import smoothing
from lstm_rare_event.alarms.thresholds import ThresholdOptions
from lstm_rare_event.alarms.episodes import false_episodes_by_cut
from lstm_rare_event.alarms.metrics import days_covered
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import to_jsonable
from lstm_rare_event.preprocess.windows import Windows
from lstm_rare_event.run import (
    DEFAULT_WAIT, DETECTOR, PREPARE_JSON, THRESHOLD_JSON, THRESHOLD_PNG, Run, resolve_run, runs_before, split_files,
)
from lstm_rare_event.tables import format_table


def resolved_options(run: Run, options: ThresholdOptions) -> ThresholdOptions:
    """``options`` in minutes at the run's cadence and label shift (prepare.json)."""
    info = run.prepare_info()
    shift = info.mapping("options").integer("shift", lambda v: v >= 0, "0 or more")
    interval = info.number("interval_minutes", lambda v: v > 0, "a positive number")
    return options.resolved(interval, shift)


# threshold --pool: how many runs' validation windows the threshold is chosen on (1: this run's only).
DEFAULT_POOL = 1


def run_threshold(run_dir, options: ThresholdOptions = ThresholdOptions(), engine: str | None = None,
                  wait: float = DEFAULT_WAIT, allow_pickle: bool = False, previous=None,
                  pool: int = DEFAULT_POOL) -> dict:
    """Choose the threshold on validation; write threshold.json and threshold.png; return the summary.

    ``previous``: the run directory whose threshold this one replaces (last night's); the
    summary then compares the two values and warns when they are far apart (:func:`compared`).
    ``pool``: choose on the validation windows of this run and of ``pool`` - 1 runs before it
    (``previous`` and the runs before it by name), each scored by its own run (:func:`_pooled`).
    ``options.carry`` > 0: the threshold is the rule's choice averaged with ``previous``'s
    threshold (:func:`~lstm_rare_event.alarms.thresholds.carried`), when their scores compare.
    """
    if pool < 1:
        raise UserError(f"--pool must be 1 or more (1: this run's validation only), got {pool}")
    if pool > 1 and previous is None:
        raise UserError(f"--pool {pool} needs --previous RUN: the runs whose validation is pooled are it and the "
                        "runs before it by name in its folder")
    if options.carry and previous is None:
        raise UserError(f"--carry {options.carry:g} needs --previous RUN: the run whose threshold is carried")
    before = _previous_threshold(previous, wait) if previous is not None else None
    earlier = runs_before(previous, pool - 1) if pool > 1 else []
    run = Run(run_dir)
    with run.locked(wait):
        run.check("prepare", [*split_files("valid", *(["train"] if options.needs_train else [])), PREPARE_JSON])
        run.check("train", [DETECTOR])
        interval = run.interval_minutes()
        options = resolved_options(run, options)
        horizon = options.horizon
        valid = run.split("valid")
        if thresholds.RULES[options.rule].needs_positives and not run.labelled():
            raise UserError(f"--rule {options.rule} needs labelled breaks and the data of {run_dir} has no label "
                            "column; use --rule quantile, evt, alarms-per-day or value, or prepare with --label-column")
        thresholds.check_labels(options.rule, valid.y)  # before the detector runs, not after
        detector = run.detector(engine=engine, allow_pickle=allow_pickle)
        log.info(f"{detector.name} scores of {len(valid):,} validation windows")
        train = None
        if options.needs_train:
            train = run.split("train")
            why = f"--on {options.params['on']}" if options.on_train else f"the first windows' --smooth {options.smooth}"
            log.info(f"{detector.name} scores of {len(train):,} training windows ({why})")
        valid_scores, train_normal = evaluation.rule_scores(detector.score, valid, train, options.smooth, options.on_train)
        pooled = None
        if earlier:
            valid, valid_scores, pooled = _pooled(run, detector.name, valid, valid_scores, earlier, engine,
                                                  allow_pickle, wait, options.smooth)
        scored = evaluation.scored(valid_scores, valid, interval, options.merge, horizon, train_normal)
        chosen = evaluation.choose_on_validation(scored, options.rule, options.params)
        carry = None
        if before is not None and options.carry:
            chosen, carry = _carried(chosen, scored, options, detector.name, before)
        summary = {
            "rule": options.rule,
            "params": options.params,
            "value": chosen["value"],
            "merge_minutes": options.merge,
            "horizon_minutes": horizon,
            **smoothing(options.smooth),
            "detector": detector.name,
            "engine": detector.engine,
            "interval_minutes": interval,
            "validation": chosen["validation"],
            "budgets": chosen["budgets"],
            **{key: chosen[key] for key in ("tail", "note") if key in chosen},
            **({"pool": pooled} if pooled is not None else {}),
            **({"carry": carry} if carry is not None else {}),
        }
        for text in (summary.get("note"), (carry or {}).get("note")):
            if text:
                log.info(text)
        warning = value_warning(options.rule, chosen["value"], summary["validation"])
        if warning:
            summary["warning"] = warning
        if before is not None:
            summary["previous"] = compared(chosen["value"], detector.name, before)
        log.info(f"threshold {chosen['value']:.6g} (--rule {options.rule}); writing {THRESHOLD_JSON} and {THRESHOLD_PNG}")
        step_options = {"rule": options.rule, "params": options.params, "merge": options.merge,
                        "horizon": horizon, **smoothing(options.smooth), "engine": detector.engine,
                        **({"carry": options.carry} if carry is not None else {})}
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
    if summary.get("previous", {}).get("warning"):
        log.warning(summary["previous"]["warning"])
    return summary


def _pooled(run: Run, detector: str, valid: Windows, scores: np.ndarray, earlier: list, engine: str | None,
            allow_pickle: bool, wait: float, smooth: int = 1) -> tuple[Windows, np.ndarray, dict | None]:
    """(windows, scores, what was pooled or None): ``valid`` with its ``scores``, after the
    validation windows of the ``earlier`` runs (newest first) that end before every window
    pooled so far (runs validated on overlapping days give their common windows once, the
    newest run's).

    Each earlier run scores its own validation windows, not this run's pipeline: the nightly run
    trains on the days just before its validation day, so last night's validation day lies in
    this run's training rows, where its scores are in-sample, lower than on any day after the
    training; pooled so, they would pull the threshold below what the live day needs. Scored by the run validated on them, every pooled day is what
    the live day is to this run: the day after the training. With ``smooth`` > 1 each run's
    scores are smoothed after its own training windows', as this run's are. That presumes the scores compare
    across runs, which holds for one detector on one set of sensors and cadence, each run scaled
    on its own training; a run of another detector, sensors or cadence ends the pool."""
    features, interval = run.prepare_info().data.get("features"), run.interval_minutes()
    windows, parts, names = [valid], [scores], []
    first = valid.end_time.min() if len(valid) else None
    for path in earlier:
        other = Run(path)
        with other.reading(wait):
            other.check("prepare", [*split_files("valid"), PREPARE_JSON])
            other.check("train", [DETECTOR])
            scorer = other.detector(engine=engine, allow_pickle=allow_pickle)
            if (scorer.name, other.prepare_info().data.get("features"), other.interval_minutes()) != \
                    (detector, features, interval):
                log.info(f"--pool: {other.path} has another detector, sensors or cadence; the pool ends there")
                break
            split = other.split("valid")
            before = np.flatnonzero(split.end_time < first) if first is not None else np.arange(len(split))
            if before.size == 0:
                continue
            log.info(f"--pool: {scorer.name} scores of {len(before):,} validation windows of {other.path}")
            own, _ = evaluation.rule_scores(scorer.score, split, other.split("train") if smooth > 1 else None, smooth)
            split = split.subset(before)
            windows.append(split)
            parts.append(own[before])
            names.append(str(other.path))
            first = split.end_time.min()
    if not names:
        return valid, scores, None
    pooled = Windows.concat(windows[::-1])
    info = {"runs": names, "windows": len(pooled), "own_windows": len(valid),
            "days": days_covered(len(pooled), interval)}
    return pooled, np.concatenate(parts[::-1]), info


# threshold --previous warns when the new value is more than this many times the previous one, or
# less than its inverse: a retrain or a validation period that moved the alarm line that much
# changes how often the plant is alarmed (issue 19: 8.64 after 4.5 the night before, then silence).
PREVIOUS_RATIO = 2.0


class Previous(NamedTuple):
    """What ``threshold --previous RUN`` reads of that run."""
    run: str
    value: float
    detector: str
    smooth: int


def _previous_threshold(previous, wait: float) -> Previous:
    """The run ``previous``'s threshold; read before this run is locked, as it may be the same
    directory. A link (``current``) is named by the run it points to now, which the new run is
    about to replace."""
    other = Run(resolve_run(previous))
    with other.reading(wait):
        chosen = other.threshold()
    return Previous(str(other.path), chosen.value, str(chosen.data.get("detector", "")), chosen.smooth)


def _carried(chosen: dict, scored, options: ThresholdOptions, detector: str, before: Previous) -> tuple[dict, dict]:
    """(``chosen`` with the carried value and its validation figures, what threshold.json says
    about the carry). The previous threshold is carried only where it cuts the same score: the
    same detector and smoothing (a run's scores are scaled on its own training, so one detector's
    thresholds compare across nightly runs, as --pool presumes); otherwise the rule's choice
    stands, with a note."""
    record = {"weight": options.carry, "previous": before.value, "chosen": chosen["value"]}
    if (before.detector, before.smooth) != (detector, options.smooth):
        return chosen, {**record, "note": f"--carry: {before.run} thresholds another score ({before.detector}, smooth "
                                          f"{before.smooth}; this is {detector}, smooth {options.smooth}); "
                                          "its threshold is not carried"}
    value = thresholds.carried(chosen["value"], before.value, options.carry)
    return {**chosen, "value": value, "validation": to_jsonable(evaluation.alarm_summary(scored, value))}, \
        record


def compared(value: float, detector: str, before: Previous) -> dict:
    """The new threshold ``value`` against the previous run's: their ratio, and a warning when it
    is beyond PREVIOUS_RATIO either way or the detectors differ (their scores do not compare)."""
    result = {"run": before.run, "value": before.value, "detector": before.detector, "ratio": None, "warning": None}
    if before.detector and before.detector != detector:
        result["warning"] = (f"--previous {before.run} thresholds another detector ({before.detector}, this is "
                             f"{detector}); their values do not compare")
        return result
    if before.value > 0:
        result["ratio"] = value / before.value
        if not 1 / PREVIOUS_RATIO <= result["ratio"] <= PREVIOUS_RATIO:
            result["warning"] = (f"the threshold {value:.6g} is {result['ratio']:.3g}x the previous run's "
                                 f"{before.value:.6g} ({before.run}): alarms will be much {'rarer' if result['ratio'] > 1 else 'more frequent'} "
                                 "than under the previous threshold; check the validation period (its length, any drift)")
    return result


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
        *([["score", f"trailing median over {summary['smooth']} windows"]] if summary.get("smooth", 1) > 1 else []),
        ["detector", f"{summary['detector']} ({summary['engine']} engine)"],
        *([["chosen by the rule", summary["carry"]["chosen"]],
           [f"previous run's threshold, weighted {summary['carry']['weight']:g}", summary["carry"]["previous"]]]
          if "carry" in summary and "note" not in summary["carry"] else []),
        [f"on validation: {v['n_windows']:,} windows, {v['n_positive']:,} positive"
         + (f" (pooled over {len(summary['pool']['runs']) + 1} runs)" if "pool" in summary else "")],
        ["alarms (true / false)", f"{c['tp']:,} / {c['fp']:,}"],
        ["precision", v["precision"]],
        ["recall", v["recall"]],
        ["F1", v["f1"]],
        ["false alarm windows per day", v["false_alarms_per_day"]],
        *episode_rows(v["episodes"]),
    ]) + "".join(f"\n{label}: {text}" for label, text in (("Note", summary.get("note")),
                                                           ("Warning", summary.get("previous", {}).get("warning")))
                  if text)

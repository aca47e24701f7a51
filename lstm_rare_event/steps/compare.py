"""The ``compare`` step: several evaluated runs of one prepared split, side by side.

The runs must share their test windows (one ``prepare``, several ``train --out``), so their
scores can be compared window by window: the bootstrap draws the same break events and days
for every detector, which makes the paired differences meaningful.
"""

from __future__ import annotations

from lstm_rare_event.alarms.bootstrap import blocks, bootstrap_metrics
from lstm_rare_event.alarms.verdict import interval
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import to_jsonable
from lstm_rare_event.run import EVALUATE_JSON, Run
from lstm_rare_event.tables import format_table

REPLICATES = 1000


def compare(run_dirs, replicates: int = REPLICATES, seed: int = 0, allow_pickle: bool = False) -> dict:
    """``allow_pickle``: load plug-in detectors saved with pickle (which runs their code)."""
    if len(run_dirs) < 2:
        raise UserError("compare needs at least two run directories")
    reports, scores, test, test_hash = {}, {}, None, None
    for run_dir in run_dirs:
        run = Run(run_dir)
        with run.reading():
            run.check("evaluate", [EVALUATE_JSON])
            digest = run.split_digest("test")
            if test_hash is not None and digest != test_hash:
                raise UserError(f"{run.path}: its test split differs from {run_dirs[0]}'s; compare runs made "
                                "from one prepare (train --out for each detector)")
            test_hash = digest
            report = run.json("evaluate", EVALUATE_JSON)
            name = _label(report["detector"], run.path.name, reports)
            reports[name] = report
            test = run.split("test")
            scores[name] = run.detector(allow_pickle=allow_pickle).score(test)
            labels = run.label_mode()
    intervals = bootstrap_metrics(test.y, scores, blocks(labels, test.y, test.event_time, test.end_time),
                                  n=replicates, seed=seed)
    return to_jsonable({"runs": {name: str(d) for name, d in zip(reports, run_dirs)}, "reports": reports,
                        "bootstrap": intervals})


def _label(detector: str, folder: str, taken) -> str:
    return detector if detector not in taken else f"{detector} ({folder})"


def compare_text(result: dict) -> str:
    b = result["bootstrap"]
    by_interval = all("intervals" in report for report in result["reports"].values())
    if by_interval:
        rows = [["detector", "ROC-AUC [95% CI]", "PR-AUC [95% CI]", "F1", "FAR", "MAR", "intervals detected",
                 "by chance", "alarm on", "mean delay, min"]]
    else:
        rows = [["detector", "ROC-AUC [95% CI]", "PR-AUC [95% CI]", "breaks warned", "by chance", "alarm on",
                 "false episodes / day"]]
    for name, report in result["reports"].items():
        aucs = [name, interval(b["detectors"][name]["roc_auc"]), interval(b["detectors"][name]["pr_auc"])]
        if by_interval:
            i = report["intervals"]
            rows.append([*aucs, i["f1"], i["far"], i["mar"], f"{i['detected']} of {i['n_intervals']}",
                         i["detected_share_chance"], i["alarm_on_share"], i["mean_delay_minutes"]])
            continue
        e, c = report["episodes"], report.get("warned_chance", {})
        rows.append([*aucs, f"{e['warned']} of {e['n_breaks']}", c.get("warned_share_chance"), c.get("alarm_on_share"),
                     e["false_episodes_per_day"]])
    units = "anomaly intervals" if by_interval else "break events"
    lines = [format_table(rows), "",
             f"Paired differences ({b['replicates']} bootstrap replicates of {b['blocks']['breaks']} {units} "
             f"and {b['blocks']['normal_blocks']} normal days):"]
    for d in b["differences"]:
        roc = d["roc_auc"]
        verdict = ("no difference" if not roc["excludes_zero"]
                   else f"{d['a'] if roc['estimate'] > 0 else d['b']} ranks breaks better")
        lines.append(f"  {d['a']} - {d['b']}: ROC-AUC {interval(roc)}: {verdict}")
    return "\n".join(lines)

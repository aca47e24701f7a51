"""bench/backtest.md from bench/backtest_study.py's numbers."""

from __future__ import annotations


def num(value, digits=3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def interval(entry: dict) -> str:
    return f"{num(entry['estimate'])} [{num(entry['low'])}, {num(entry['high'])}]"


def selection_table(results: dict) -> list[str]:
    lines = ["| candidate | pooled ROC-AUC [95 % CI] | minus default [95 % CI] | kept | PR-AUC | warned (60 min) "
             "| false episodes / day (budget 1) | wall s |", "|" + " --- |" * 8]
    for label, r in results.items():
        diff = r.get("vs_default")
        e = r["episodes"]
        lines.append(f"| {label} | {interval(r['interval'])} | {interval(diff) if diff else '-'} "
                     f"| {'yes' if r.get('kept') else ('-' if diff is None else 'no')} | {num(r['pr_auc'], 4)} "
                     f"| {e['warned']}/{e['n_breaks']} | {num(e['false_episodes_per_day'], 2)} "
                     f"| {r['wall_seconds']} |")
    return lines


def markdown(out: dict) -> str:
    h = out["held_out"]
    lines = [
        "# Defaults chosen by backtest", "",
        "Made by `bench/backtest_study.py` (`make bench`). Each candidate walks forward through the **first "
        "60 %** of the real file (daily folds from 40 % of that part; fit on the train window before a "
        "1-day validation window, threshold `--rule alarms-per-day --target 1` on that day, warning horizon "
        "60 minutes). A candidate replaces the default only when its pooled ROC-AUC beats the default's "
        "with a paired bootstrap interval (resampled by break event) above 0. Scores are divided by their "
        "fold's threshold before pooling. The chosen settings are then reported once on the **rest**.", "",
        "## Selection: Mahalanobis", "", *selection_table(out["mahalanobis"]), "",
        "## Selection: autoencoder", "", *selection_table(out["lstm"]), "",
        f"Kept: mahalanobis {out['chosen']['mahalanobis'] or 'none (defaults stay)'}; "
        f"lstm {out['chosen']['lstm'] or 'none (defaults stay)'}.", "",
        "## Held-out report: folds from 60 % of the whole file", "",
        f"{h['folds']} daily folds, {h['scored']['windows']:,} windows over {h['scored']['days']:.1f} days, "
        f"{h['scored']['breaks']} breaks.", "",
        "| detector | pooled ROC-AUC [95 % CI] | PR-AUC | warned 60 min ahead | mean lead, min "
        "| false episodes / day | promised |", "|" + " --- |" * 7,
    ]
    for name, d in h["detectors"].items():
        e, b = d["episodes"], d["budget"]
        lines.append(f"| {name} | {interval(h['bootstrap']['detectors'][name]['roc_auc'])} "
                     f"| {num(d['windows']['pr_auc'], 4)} | {e['warned']}/{e['n_breaks']} "
                     f"| {num(e['mean_lead_minutes'], 1)} | {num(e['false_episodes_per_day'], 2)} "
                     f"| {num(b['promised'], 0)} |")
    lines += ["", "Paired ROC-AUC differences on the same windows:", ""]
    for diff in h["bootstrap"]["differences"]:
        r = diff["roc_auc"]
        word = "no difference" if not r["excludes_zero"] else "differs"
        lines.append(f"- {diff['a']} - {diff['b']}: {interval(r)} ({word})")
    lines += ["", "Verdicts:", "", *[f"- {v}" for v in h["verdicts"].values()], ""]
    lines += ["## Targets (held-out period)", "", "| target | measured | met |", "| --- | --- | --- |",
              *[f"| {what} | {got} | {'met' if ok else 'missed'} |" for what, got, ok in targets(h)], ""]
    return "\n".join(lines)


def targets(h: dict) -> list[tuple[str, str, bool]]:
    lstm = h["detectors"]["lstm"]
    e = lstm["episodes"]
    diffs = {(d["a"], d["b"]): d["roc_auc"] for d in h["bootstrap"]["differences"]}
    beats = [diffs[("lstm", ref)]["low"] > 0 for ref in ("mahalanobis", "restart")]
    rows = []
    for name, d in h["detectors"].items():
        b = d["budget"]
        if b["promised"]:
            rows.append((f"{name}: false episodes/day within 1.5x of the promised {num(b['promised'], 0)}",
                         num(b["measured"], 2), b["measured"] is not None and b["measured"] <= 1.5 * b["promised"]))
    rows += [
        ("lstm pooled ROC-AUC above mahalanobis and restart (paired interval above 0)",
         ", ".join(interval(diffs[("lstm", ref)]) for ref in ("mahalanobis", "restart")), all(beats)),
        ("lstm warns at least half the breaks 60 min ahead at <= 3 false episodes/day",
         f"{e['warned']}/{e['n_breaks']} at {num(e['false_episodes_per_day'], 2)}/day",
         e["warned"] >= e["n_breaks"] / 2 and e["false_episodes_per_day"] <= 3),
        ("lstm pooled ROC-AUC >= 0.75", num(lstm["windows"]["roc_auc"]), lstm["windows"]["roc_auc"] >= 0.75),
    ]
    return rows

"""bench/results.md from the numbers bench/run.py (and bench/scale.py) measured: tables, then targets met or missed."""

from __future__ import annotations

#: `score` on 1,000,000 rows before issue 12's throughput work: 45-56 s on 2 cores, about 20,000 rows/s
BEFORE_ROWS_PER_SECOND = 20_000

RUNS = {
    "recipe": "recipe (no detrending, article net, 200 epochs, lr 1e-4, batch 64, last-row error, value 0.3)",
    "defaults": "tool defaults (detrend 30, clip 10, batch 512, lr 3e-3, early stopping, mean error, 1 alarm/day)",
    "mahalanobis": "reference: Mahalanobis distance of the last row",
    "restart": "reference: time since the last restart",
}
SPLITS = {
    "random": "Random split (`--split random --seed 123 --allow-gaps`, the recipe's)",
    "time": "Time split (`--split time`, 60/20/20 by time, the tool's default)",
}


def num(value, digits=3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def interval(entry: dict, digits=3) -> str:
    return f"{num(entry['estimate'], digits)} [{num(entry['low'], digits)}, {num(entry['high'], digits)}]"


def caught(report: dict, budget: float) -> str:
    for row in report["alarm_budgets"]["rows"]:
        if row["alarms_per_day"] == budget:
            return f"{row['warned']}/{row['n_breaks']} ({num(row['false_episodes_per_day'], 1)}/day)"
    return "-"


def pair(boot: dict, a: str, b: str) -> dict:
    return next(d for d in boot["differences"] if (d["a"], d["b"]) == (a, b))


def quality_table(split: dict) -> list[str]:
    boot = split["bootstrap"]["detectors"]
    lines = [
        "| run | ROC-AUC [95 % CI] | PR-AUC [95 % CI] | PR-AUC / base rate | TN / FP / FN / TP | precision | recall"
        " | F1 | breaks caught | false alarms / day | mean lead, min | caught at 1 / day | caught at 5 / day |",
        "|" + " --- |" * 13,
    ]
    for name, label in RUNS.items():
        report = split["runs"][name]
        w, e = report["windows"], report["events"]
        c = w["confusion"]
        lines.append(
            f"| {label} | {interval(boot[name]['roc_auc'])} | {interval(boot[name]['pr_auc'], 4)} "
            f"| {num(w['pr_auc'] / w['base_rate'], 2)} | {c['tn']} / {c['fp']} / {c['fn']} / {c['tp']} "
            f"| {num(w['precision'])} | {num(w['recall'])} | {num(w['f1'])} | {e['caught']}/{e['n_breaks']} "
            f"| {num(e['false_alarms_per_day'], 1)} | {num(e['mean_lead_minutes'], 1)} "
            f"| {caught(report, 1.0)} | {caught(report, 5.0)} |"
        )
    return lines


def paired_table(split: dict) -> list[str]:
    lines = ["| difference | ROC-AUC [95 % CI] | excludes 0 | PR-AUC [95 % CI] | excludes 0 |",
             "| --- | --- | --- | --- | --- |"]
    for other in ("recipe", "mahalanobis", "restart"):
        d = pair(split["bootstrap"], "defaults", other)
        lines.append(
            f"| defaults - {other} | {interval(d['roc_auc'])} | {'yes' if d['roc_auc']['excludes_zero'] else 'no'} "
            f"| {interval(d['pr_auc'], 4)} | {'yes' if d['pr_auc']['excludes_zero'] else 'no'} |"
        )
    return lines


def speed_lines(results: dict) -> list[str]:
    s = results["speed"]
    lines = ["| what | tool | reference (same run) | ratio |", "| --- | --- | --- | --- |"]
    p = s["prepare_seconds"]
    lines.append(f"| `prepare`, whole file, s | {num(p['defaults'], 2)} | {num(p['recipe_flags'], 2)} (recipe flags) "
                 f"| {num(p['recipe_flags'] / p['defaults'], 2)} |")
    for split in ("random", "time"):
        ours, recipe = (results[split]["runs"][n]["train"] for n in ("defaults", "recipe"))
        lines.append(
            f"| `train`, {split} split: s (epochs, best val_loss) | {num(ours['wall_seconds'], 1)} "
            f"({ours['epochs_run']}, {num(ours['best_val_loss'], 4)}) | {num(recipe['wall_seconds'], 1)} "
            f"({recipe['epochs_run']}, {num(recipe['best_val_loss'], 4)}) (recipe) "
            f"| {num(recipe['wall_seconds'] / ours['wall_seconds'], 1)}x faster |"
        )
    for label, times in s["score_seconds"].items():
        lines.append(f"| `score` {label.replace('_', ' ')}, process wall s | {num(times['numpy'], 2)} "
                     f"| {num(times['keras'], 2)} (`--engine keras`) | {num(times['keras'] / times['numpy'], 1)}x faster |")
    lines.append(f"| `score` 1,000,000 rows, peak RSS MB | {num(s['score_million_rows_peak_rss_mb'], 0)} | | |")
    bt = s.get("backtest_seconds")
    if bt:
        lines.append(f"| `backtest` whole file, daily folds from 40 %, lstm with warm start, s | {num(bt['lstm'], 1)} "
                     f"| {num(bt['mahalanobis'], 1)} (mahalanobis) | {num(bt['lstm'] / bt['mahalanobis'], 1)}x slower |")
    return lines


def scale_lines(scale: dict, results_date: str) -> list[str]:
    m, t = scale["memory"], scale["training"]
    shape = (f"{m['materialized_windows']:,} windows of {m['lookback']} rows x {m['n_features']} features, "
             f"{num(m['materialized_mib'], 0)} MiB as one float32 array" if m["lookback"] else "prepare wrote no windows")
    lines = [f"Measured on {scale.get('date', results_date)} with `python bench/scale.py`.", "",
             f"### Memory on {m['rows']:,} synthetic rows (`demo-data`; {shape})", "",
             "Each step's peak resident memory (the kernel's accounting, also for a step that died) beside the size "
             "of the windows it would hold if it materialized them. A step is killed past "
             f"{num(m['cap_mib'], 0)} MiB, to spare the machine's other work.", "",
             f"| step | peak RSS MiB | wall s | load average before | materialized alternative MiB (windows) "
             f"| under {m['limit_mib'] // 1024} GB |", "| --- | --- | --- | --- | --- | --- |"]
    for name, s in m["steps"].items():
        alternative = (f"{num(s['materialized_mib'], 0)} ({s['materialized_windows']:,})"
                       if s["materialized_windows"] is not None else "-")
        if "skipped" in s:
            lines.append(f"| `{name}` | - | - | - | {alternative} | skipped: {s['skipped']} |")
            continue
        verdict = "yes" if s["under_limit"] else "**no**"
        if s["error"]:
            verdict += f" (failed, exit {s['exit_code']}: {s['error']})"
        lines.append(f"| `{name}` | {num(s['peak_rss_mib'], 0)} | {num(s['wall_seconds'], 1)} "
                     f"| {num(s['load_average_before'], 1)} | {alternative} | {verdict} |")
    lines += ["", f"### Training on the real file: one process, mirrored, {t['workers']} workers on 127.0.0.1", "",
              f"The default network, {t['epochs']} epochs without early stopping, seed 1. Wall time is the whole "
              "process (or the whole cluster, start to every worker done), start-up included.", "",
              "| run | wall s | fit s | s / epoch | final val_loss | best val_loss | ratio to single | load average before |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in t["runs"].items():
        if r.get("error"):
            lines.append(f"| {name.replace('_', '-')} | {num(r['wall_seconds'], 1)} | failed: {r['error']} "
                         f"| | | | | {num(r['load_average_before'], 1)} |")
            continue
        lines.append(f"| {name.replace('_', '-')} | {num(r['wall_seconds'], 1)} | {num(r['fit_seconds'], 1)} "
                     f"| {num(r['seconds_per_epoch'], 2)} | {num(r['final_val_loss'], 4)} | {num(r['best_val_loss'], 4)} "
                     f"| {num(r['ratio_to_single'], 2)} | {num(r['load_average_before'], 1)} |")
    return lines


def throughput_lines(t: dict, results_date: str) -> list[str]:
    lines = [f"Measured on {t.get('date', results_date)} with `python bench/throughput.py`: "
             f"`score RUN FILE --out scores.csv` on {t['rows']:,} rows (the real rows repeated), numpy engine, "
             f"whole process, median of {t['repeats']}; the baseline is the code of commit {t['ref_commit'][:7]} "
             f"(before issue 12), run alternately in the same invocation. Load average "
             f"before: {num(t['load_average_before'], 1)}. The issue measured {BEFORE_ROWS_PER_SECOND:,} rows/s "
             "before.", "",
             "| detector | wall s | rows/s | baseline wall s | baseline rows/s | speed-up | same bytes |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for detector, d in t["detectors"].items():
        lines.append(f"| {detector} | {num(d['current_wall_seconds'], 1)} | {d['current_rows_per_second']:,.0f} "
                     f"| {num(d['baseline_wall_seconds'], 1)} | {d['baseline_rows_per_second']:,.0f} "
                     f"| {num(d['speedup'], 2)}x | {'yes' if d['identical_output'] else '**no**'} |")
    if "read_csv_wall_seconds" in t:
        small = t["small_call"]
        lines += ["", "The floors (issue 20), timed alternately with what they bound in the same invocation: "
                  f"`pandas.read_csv` of the same file, whole process, {num(t['read_csv_wall_seconds'], 1)} s "
                  "(score / read_csv per detector below); a one-row `score --state` call of the lstm run "
                  f"{num(small['score_wall_seconds'], 2)} s against `python -c \"import numpy\"` "
                  f"{num(small['import_numpy_wall_seconds'], 2)} s (median of {small['calls']}): "
                  f"{num(small['ratio'], 2)}.", "",
                  "| detector | score / read_csv |", "| --- | --- |",
                  *[f"| {detector} | {num(d['ratio_to_read_csv'], 2)} |" for detector, d in t["detectors"].items()]]
    return lines


def targets(results: dict) -> list[str]:
    def met(ok):
        return "met" if ok else "**missed**"

    t = results["time"]
    r = results["random"]
    tw = t["runs"]["defaults"]["windows"]
    rw = r["runs"]["defaults"]["windows"]
    five = next(row for row in t["runs"]["defaults"]["alarm_budgets"]["rows"] if row["alarms_per_day"] == 5.0)
    beats = all(pair(t["bootstrap"], "defaults", ref)["roc_auc"]["low"] > 0 for ref in ("mahalanobis", "restart"))
    s = results["speed"]
    train_ratio = min(results[k]["runs"]["recipe"]["train"]["wall_seconds"] /
                      results[k]["runs"]["defaults"]["train"]["wall_seconds"] for k in ("random", "time"))
    rows = [
        ("time split ROC-AUC >= 0.75", num(tw["roc_auc"]), tw["roc_auc"] >= 0.75),
        ("time split PR-AUC >= 0.06", num(tw["pr_auc"], 4), tw["pr_auc"] >= 0.06),
        ("time split: a third of breaks warned at <= 5 false alarm episodes/day",
         f"{five['warned']}/{five['n_breaks']} at {num(five['false_episodes_per_day'], 1)}/day",
         five["warned"] >= five["n_breaks"] / 3 and five["false_episodes_per_day"] <= 5),
        ("time split: beats both references, paired ROC-AUC interval above 0", "see paired table", beats),
        ("random split PR-AUC >= 0.055", num(rw["pr_auc"], 4), rw["pr_auc"] >= 0.055),
        ("random split ROC-AUC >= 0.75", num(rw["roc_auc"]), rw["roc_auc"] >= 0.75),
        ("`train` >= 10x faster than the recipe", f"{num(train_ratio, 1)}x", train_ratio >= 10),
        ("`score` one day <= 1.0 s", num(s["score_seconds"]["one_day_720_rows"]["numpy"], 2),
         s["score_seconds"]["one_day_720_rows"]["numpy"] <= 1.0),
        ("`score` whole file <= 1.5 s", num(s["score_seconds"]["whole_file"]["numpy"], 2),
         s["score_seconds"]["whole_file"]["numpy"] <= 1.5),
        ("`score` 1,000,000 rows <= 500 MB peak RSS", num(s["score_million_rows_peak_rss_mb"], 0),
         s["score_million_rows_peak_rss_mb"] <= 500),
        *[(f"`score` >= 100,000 rows/s on 1,000,000 rows, {detector} (issue 12; {BEFORE_ROWS_PER_SECOND:,} before)",
            f"{d['current_rows_per_second']:,.0f}", d["current_rows_per_second"] >= 100_000)
          for detector, d in results.get("throughput", {}).get("detectors", {}).items()],
        *[(f"`score` / `pandas.read_csv` of the same 1,000,000 rows <= 1.5, {detector} (issue 20)",
           num(d["ratio_to_read_csv"], 2), d["ratio_to_read_csv"] <= 1.5)
          for detector, d in results.get("throughput", {}).get("detectors", {}).items() if "ratio_to_read_csv" in d],
        *[("one-row `score --state` <= 1.2 x `python -c \"import numpy\"` (issue 20)", num(small["ratio"], 2),
           small["met"]) for small in [results.get("throughput", {}).get("small_call")] if small],
        *[(f"`{name}` of {m['rows']:,} rows in < 2 GB peak memory (issue 12)",
           f"{num(step['peak_rss_mib'], 0)} MiB" if "peak_rss_mib" in step else step.get("skipped", "-"),
           bool(step.get("under_limit")))
          for m in [results.get("scale", {}).get("memory")] if m for name, step in m["steps"].items()],
        ("`prepare` whole file <= 2 s", num(s["prepare_seconds"]["defaults"], 2), s["prepare_seconds"]["defaults"] <= 2),
        *([("`backtest` lstm, whole file from 40 %, <= 5 min", num(s["backtest_seconds"]["lstm"], 1),
            s["backtest_seconds"]["lstm"] <= 300)] if "backtest_seconds" in s else []),
    ]
    return ["| target | measured | |", "| --- | --- | --- |"] + [f"| {a} | {b} | {met(c)} |" for a, b, c in rows]


def markdown(results: dict) -> str:
    a = results["article"]
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    out = [
        "# Benchmark: the 2019 recipe and the tool's defaults on the real sheet-break data",
        "",
        f"Run `make bench` on {results['date']}: {results['machine']['cpus']} CPUs, {results['machine']['platform']}, "
        f"Python {results['machine']['python']}; {versions}. Whole run: {results['bench_minutes']:.1f} minutes.",
        "",
        "Every threshold was chosen on the validation split; each test split was read once. Intervals are 95 % "
        "bootstrap percentiles resampled by break event (each break's windows together, normal windows by day).",
        "Breaks caught at 1 and 5 false alarms per day use thresholds chosen on validation for that budget; "
        "the test rate they reach is shown beside them.",
    ]
    if results["quick"]:
        out += ["", "**BENCH_QUICK run: 2 epochs, few repeats. These numbers check the benchmark, nothing else.**"]
    for key, title in SPLITS.items():
        out += ["", f"## {title}", "", *quality_table(results[key]), "", "Paired differences (same resamples):",
                "", *paired_table(results[key])]
        if key == "random":
            out += ["", f"The article reported on its split: TN / FP / FN / TP {a['tn']} / {a['fp']} / {a['fn']} / "
                        f"{a['tp']}, precision {a['precision']}, recall {a['recall']}, F1 {a['f1']}, "
                        f"ROC-AUC {a['roc_auc']}."]
    out += ["", "## Speed", "", *speed_lines(results)]
    if "throughput" in results:
        out += ["", "## `score` throughput (issue 12)", "", *throughput_lines(results["throughput"], results["date"])]
    if "scale" in results:
        out += ["", "## Past one machine (issue 12)", "", *scale_lines(results["scale"], results["date"])]
    out += ["", "## Targets (issue 5)", "", *targets(results), ""]
    return "\n".join(out)

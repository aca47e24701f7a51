"""The two missed valve1 targets of issue 18 (pca F1 > 0.76; the autoencoder F1 >= 0.82 with FAR
<= 20 % as SKAB counts): a short list of option sets declared before any was measured, each
judged against the Makefile's default before it, and the choice among them checked by leaving each
experiment out; then, for lstm, a second round declared the same way (SECOND_ROUND) against the
first round's choice.

`python bench/skab_options.py [DETECTOR...]` (pca, lstm; default both). A set with its own
training options is a run of examples/skab/Makefile (bench/skab.py's run_make) into
bench/work/skab-options-DETECTOR-TRAIN-VARIABLES; a set that differs from an earlier one only in
the threshold (SMOOTH, SMOOTH_FACTOR) copies that set's trained runs and reruns the Makefile's two last
commands on each, `threshold RUN -q THRESHOLD` and `score RUN FILE --all-rows`, with THRESHOLD
as the Makefile expands it for those variables, then `evaluate-scores`: the result a Makefile
run would give on the same trained models, without training 16 autoencoders again. Writes
bench/skab_options.md and bench/skab_options.json. Only valve1 is read (bench/skab.py's DATA).

Leave one experiment out: for each of the 16, the set with the highest pooled F1 (as SKAB
counts) on the other 15 is chosen (for lstm among the sets whose pooled FAR as SKAB counts is
at most 20 % there, the default when none is), and its counts on the left-out experiment are
kept; the 16 kept counts pooled are what choosing among the sets on valve1 is worth on an
experiment the choice did not see. Intervals resample whole experiments (evaluate-scores'
draws, 1000 replicates, seed 0); differences are paired (the same draws for both sides).
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from common import CLI, ROOT
from skab import (ABOVE, AUTOENCODER_F1, AUTOENCODER_FAR, DATA, JOBS, WORK, detectors_asked, log,
                  makefile_values, publish, run_make)
from skab_pca import counts_of, paired, slug
from lstm_rare_event.alarms.bootstrap import pooled_metrics
from lstm_rare_event.alarms.intervals import counted_metrics

# Declared before any set was measured (2026-12-05), from bench/skab_pca.md (3-4 components
# without smoothing: the same F1 at 6-10 points less FAR, so a smoothing that lifts recall may
# lift F1) and bench/skab_smooth.md (lstm SMOOTH=30: +0.020 F1 at FAR 19.9 % as SKAB counts, at
# the bar; a shorter median should cost less FAR). Each: (label, TRAIN or None for the
# Makefile's, other Makefile variables), every option the study changed given, so that the sets
# stay these when the Makefile's defaults move. The first of a detector is its Makefile default
# before the study (TRAIN_lstm did not change).
SMOOTHED = {"SMOOTH": "30", "SMOOTH_FACTOR": "2"}
CANDIDATES = {
    "pca": [
        ("the default before: `--variance 0.99` (all 8 components: T-squared alone), SMOOTH=30 at 2 x",
         "--variance 0.99", SMOOTHED),
        ("T-squared+Q on 3 components, SMOOTH=30 at 2 x", "--components 3", SMOOTHED),
        ("T-squared+Q on 4 components, SMOOTH=30 at 2 x", "--components 4", SMOOTHED),
        ("T-squared+Q on 3 components, SMOOTH=30 at 1.5 x the largest smoothed score", "--components 3",
         {**SMOOTHED, "SMOOTH_FACTOR": "1.5"}),
    ],
    # SMOOTH_FACTOR given since the second round below (its value then, 2), so that these sets
    # stay these if that round moves the lstm factor.
    "lstm": [
        ("the default before: `--error last`, SKAB's limit unsmoothed", None, {"SMOOTH": "0"}),
        ("SMOOTH=5", None, {"SMOOTH": "5", "SMOOTH_FACTOR": "2"}),
        ("SMOOTH=10", None, {"SMOOTH": "10", "SMOOTH_FACTOR": "2"}),
        ("SMOOTH=30", None, SMOOTHED),
    ],
}
# A second round, lstm only, declared before any of its sets was measured (2026-12-05 18:30 UTC),
# judged by the same rule with the first round's choice as its default, on the same trained runs
# (threshold-only sets). From the first round: SMOOTH=30 at 2 x misses few fault rows (MAR 11.0 %)
# and flags many normal ones (40.8 % of the judged), 1.2 points under the FAR bar as SKAB counts;
# so each of the two knobs one step either way: the limit at 1.75 x (recall, at FAR with little
# room) and 2.5 x (precision, at recall), the median over 20 and 60 windows.
SECOND_ROUND = {
    "lstm": [
        ("the default now: SMOOTH=30 at 2 x (the first round's choice)", None, SMOOTHED),
        ("SMOOTH=30 at 1.75 x", None, {**SMOOTHED, "SMOOTH_FACTOR": "1.75"}),
        ("SMOOTH=30 at 2.5 x", None, {**SMOOTHED, "SMOOTH_FACTOR": "2.5"}),
        ("SMOOTH=20 at 2 x", None, {**SMOOTHED, "SMOOTH": "20"}),
        ("SMOOTH=60 at 2 x", None, {**SMOOTHED, "SMOOTH": "60"}),
    ],
}
# The rule, declared with the list: a set replaces the default when leaving one experiment out
# chooses it in at least 12 of the 16 folds, the pooled held-out F1 of that choice is above the
# default's with a paired interval above 0, and (lstm) its FAR as SKAB counts is at most 20 %.
MAJORITY = 12
FAR_CAP = {"lstm": AUTOENCODER_FAR}


def out_dir(detector: str, train: str | None, variables: dict) -> Path:
    name = "-".join([detector, slug(train) if train else "default",
                     *(f"{k.lower()}-{slug(v)}" for k, v in variables.items())])
    return WORK / f"skab-options-{name}"


def rethreshold(source: Path, out: Path, detector: str, variables: dict) -> dict:
    """``source``'s trained runs thresholded and scored again with the Makefile's THRESHOLD for
    ``variables`` (its own two commands), then evaluate-scores; skipped when ``out`` already
    holds the result for the same THRESHOLD."""
    threshold = makefile_values(("THRESHOLD",), DETECTOR=detector, **variables)[0].split(" = ", 1)[1]
    results, recorded = out / "results.json", out / "options"
    if results.is_file() and recorded.is_file() and recorded.read_text() == threshold:
        return {"results": json.loads(results.read_text())}
    log(f"{detector}: {source.name}'s runs thresholded with {threshold} into {out}")
    shutil.rmtree(out, ignore_errors=True)
    experiments = json.loads((source / "results.json").read_text())["per_experiment"]
    pairs = [(out / "runs" / Path(e["run"]).name, out / Path(e["scores"]).name, e["input"]) for e in experiments]

    def one(pair) -> None:
        run, scores, source_file = pair
        shutil.copytree(source / "runs" / run.name, run)
        for args in (["threshold", str(run), "-q", *threshold.split()],
                     ["score", str(run), source_file, "--out", str(scores), "--all-rows", "-q"]):
            done = subprocess.run(["nice", "-n", "10", *CLI, *args], cwd=ROOT, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"bench skab_options: {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")

    with ThreadPoolExecutor(int(JOBS)) as pool:
        list(pool.map(one, pairs))
    subprocess.run([*CLI, "evaluate-scores", *(str(p) for run, scores, _ in pairs for p in (run, scores)),
                    "--out", str(results), "-q"], cwd=ROOT, check=True)
    recorded.write_text(threshold)
    return {"results": json.loads(results.read_text())}


def measure(detector: str, sets: list, trained: dict) -> list[dict]:
    """Each of ``sets``: the first with a TRAIN through the Makefile, the others with that TRAIN
    thresholded again from its runs; ``trained`` (TRAIN -> its runs' folder) carries across rounds."""
    rows = []
    for label, train, variables in sets:
        out = out_dir(detector, train, variables)
        if train in trained:
            measured = rethreshold(trained[train], out, detector, variables)
        else:
            measured = run_make(detector, out, train, **variables)
            trained[train] = out
        rows.append({"label": label, "train": train, "variables": variables, "results": measured["results"]})
    return rows


def leave_one_out(counts: list[np.ndarray], far_cap: float | None) -> tuple[list[int], np.ndarray]:
    """Per experiment, the index of the set chosen on the others and that set's counts there."""
    chosen, kept = [], []
    for i in range(len(counts[0])):
        rest = [pooled(np.delete(c, i, axis=0)) for c in counts]
        f1, far = np.array([m["f1"] for m in rest]), np.array([m["far"] for m in rest])
        allowed = np.ones(len(counts), bool) if far_cap is None else far <= far_cap
        best = int(np.argmax(np.where(allowed, f1, -1))) if allowed.any() else 0
        chosen.append(best)
        kept.append(counts[best][i])
    return chosen, np.array(kept)


def pooled(counts: np.ndarray) -> dict:
    return counted_metrics(*(int(v) for v in counts.sum(axis=0)))


def ci(metric: dict, name: str, scale: float = 1, digits: int = 3) -> str:
    low, high = metric[f"{name}_interval"]
    return f"{metric[name] * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def difference(counts: np.ndarray, base: np.ndarray, name: str, scale: float = 1, digits: int = 3,
               unit: str = "") -> str:
    low, high = paired(counts, base)[name]
    value = (pooled(counts)[name] - pooled(base)[name]) * scale
    return (f"{value:+.{digits}f}{unit} [{low * scale:+.{digits}f}, {high * scale:+.{digits}f}]"
            + (" no difference" if low <= 0 <= high else ""))


def study(detector: str, rows: list[dict], title: str) -> tuple[list[str], dict]:
    """One round's table, its leave-one-out check and the decision, as markdown lines and a
    summary for the json."""
    alls = [counts_of(r["results"], "all_rows") for r in rows]
    base = alls[0]
    lines = [f"### {title}", "",
             "| set | Makefile variables | F1 [95 % CI] | F1 - default [CI] | FAR % as SKAB counts [CI] | "
             "FAR - default, points [CI] | FAR % judged [CI] | MAR % [CI] |",
             "|---|---|---|---|---|---|---|---|"]
    for r, c in zip(rows, alls):
        a, j = r["results"]["all_rows"], r["results"]["judged"]
        given = " ".join([f"TRAIN='{r['train']}'"] * bool(r["train"])
                         + [f"{k}='{v}'" for k, v in r["variables"].items()])
        first = c is base
        lines.append(f"| {r['label']} | {given or '(defaults)'} | {ci(a, 'f1')} | "
                     f"{'-' if first else difference(c, base, 'f1')} | {ci(a, 'far', 100, 1)} | "
                     f"{'-' if first else difference(c, base, 'far', 100, 1)} | {ci(j, 'far', 100, 1)} | "
                     f"{ci(a, 'mar', 100, 1)} |")
    cap = FAR_CAP.get(detector)
    chosen, kept = leave_one_out(alls, cap)
    held = pooled_metrics(kept)
    tally = {i: chosen.count(i) for i in sorted(set(chosen))}
    d_f1 = paired(kept, base)["f1"]
    favourite = max(tally, key=tally.get)
    adopt = (favourite != 0 and tally[favourite] >= MAJORITY and d_f1[0] > 0
             and (cap is None or rows[favourite]["results"]["all_rows"]["far"] <= cap))
    lines += ["", f"Leave one experiment out ({'highest F1' if cap is None else f'highest F1 with FAR <= {cap:.0%}'} "
              "on the other 15): chosen " + ", ".join(f"{rows[i]['label']!r} in {n} of {len(chosen)}"
                                                       for i, n in tally.items()) + ".",
              f"The chosen sets' counts on the left-out experiments, pooled: F1 {ci(held, 'f1')}, FAR as SKAB counts "
              f"{ci(held, 'far', 100, 1)} %; minus the default, paired: F1 {difference(kept, base, 'f1')}, FAR "
              f"{difference(kept, base, 'far', 100, 1, ' points')}.",
              "", "Decision (the rule above): **"
              + (f"{rows[favourite]['label']!r} replaces the default" if adopt else "the default stays") + "**.", ""]
    best = max(range(len(rows)), key=lambda i: rows[i]["results"]["all_rows"]["f1"])
    summary = {"chosen_in_folds": {rows[i]["label"]: n for i, n in tally.items()}, "held_out": held,
               "held_out_minus_default_f1": d_f1, "adopt": rows[favourite]["label"] if adopt else None,
               "best_f1": rows[best]["label"]}
    return lines, summary


def targets(bench: dict) -> list[str]:
    lines = []
    if "pca" in bench["detectors"]:
        bar = ABOVE["pca"][1]
        above = [r["label"] for r in bench["detectors"]["pca"]["sets"] if r["results"]["all_rows"]["f1"] > bar]
        lines.append(f"- pca F1 > {bar}: " + (f"above it: {'; '.join(above)} (point estimates)" if above
                                               else "no set above it"))
    if "lstm" in bench["detectors"]:
        lstm = bench["detectors"]["lstm"]
        met = [r["label"] for r in lstm["sets"] + lstm.get("second_round", {}).get("sets", [])
               if (m := r["results"]["all_rows"])["f1"] >= AUTOENCODER_F1 and m["far"] <= AUTOENCODER_FAR]
        lines.append(f"- autoencoder F1 >= {AUTOENCODER_F1} with FAR <= {AUTOENCODER_FAR:.0%} (as SKAB counts): "
                     + (f"met by {'; '.join(met)}" if met else "no set meets it"))
    return lines


# What the measurement left (written after it, on 2026-12-05; a rerun reprints it).
NOTES = """\
The Makefile's defaults followed the first round's two decisions: `TRAIN_pca = --components 3`, `SMOOTH_FACTOR_pca = 1.5`,
`SMOOTH_lstm = 30`; bench/skab.md, a fresh run of each through the Makefile, measured the same figures as the
sets above (lstm 0.794 at 18.8 %, pca 0.776 at 19.4 %), so rethresholding the trained runs gave what the
Makefile gives. The autoencoder's training is seeded but not always bit-exact: bench/skab_smooth.md's runs
measured 0.768 at 17.5 % unsmoothed and 0.787 at 19.9 % with SMOOTH=30 (FAR over the judged rows +5.5
points [+2.0, +9.0] there, +3.7 here); FAR as SKAB counts stays close to the 20 % bar.

The second round (lstm, the threshold only, on the first round's trained runs) changed nothing: SMOOTH=60 at
2 x had the highest F1 on the other 15 experiments in all 16 folds, 0.803 [0.763, 0.849] held out at 17.9 %
FAR as SKAB counts, but its paired gain over SMOOTH=30 at 2 x, +0.009 [-0.003, +0.021], holds 0, so the
rule keeps the default. The limit trades FAR for MAR about point for point at the same F1 (1.75 x: FAR
+1.1 points, MAR -1.3; 2.5 x: FAR -2.1, MAR +2.1) and a shorter median costs F1 (SMOOTH=20: -0.011
[-0.027, -0.001]): on these models the threshold alone does not reach 0.82.

Not tried, for time: a lookback other than 10 and `--error mean` (bench/skab_study.md, outside the command
line: lookback 30 the same F1 at 4.7 points more FAR, `mean` the same F1 at 4.2 more), both retraining the
16 autoencoders, and pca at 4 components and 1.5 x. A k-consecutive-flags rule has no command-line option;
the study found it never helped (the false alarms are long runs of drift). The gains are 0.02 on valve1's 16
experiments, chosen on them: valve2 and other, kept for an independent check, were not read."""


def markdown(bench: dict, sections: list[str]) -> str:
    return "\n".join([
        "# SKAB valve1: option sets for the two missed targets, chosen by leaving experiments out",
        "",
        f"`python bench/skab_options.py {' '.join(bench['detectors'])}` on {bench['date']} (module docstring). "
        "Every set is the Makefile's (`make -f examples/skab/Makefile SKAB=../shared/data/skab/valve1 OUT=... "
        f"DETECTOR=... -j{JOBS}` with the variables shown; a set that changes only the threshold reruns `threshold` "
        "and `score` on the trained runs of the set above it with the same TRAIN). F1, FAR and MAR point-wise, "
        "pooled over the 16 experiments; FAR as SKAB counts (every row, the 400 fitting rows included: the "
        "leaderboard's) and over the judged rows; 95 % percentile bootstrap intervals resampling experiments "
        "(1000 replicates); differences paired against the first row of a round, the detector's Makefile default "
        "before that round; an interval holding 0 is \"no difference\". Every set tried is listed; each round's "
        "list was declared before any of its sets was measured.",
        "",
        f"Decision rule (declared with the first list, applied unchanged to the second round): a set replaces the default when, leaving one experiment out, "
        f"it is chosen in at least {MAJORITY} of the 16 folds, the chosen sets' pooled held-out F1 is above the "
        "default's with a paired interval above 0, and, for lstm, its FAR as SKAB counts is at most 20 %.",
        "",
        *sections,
        "Targets (issue 18):",
        "",
        *targets(bench),
        "",
        NOTES,
        "",
    ])


def main(argv: list[str]) -> int:
    chosen = detectors_asked("skab_options", argv, CANDIDATES, CANDIDATES)
    if chosen is None:
        return 2
    bench = {"date": datetime.date.today().isoformat(), "data": str(DATA), "detectors": {}}
    sections = []
    for detector in chosen:
        trained, rounds = {}, {}
        for key, sets, title in (("sets", CANDIDATES[detector], detector),
                                 ("second_round", SECOND_ROUND.get(detector), f"{detector}, second round")):
            if not sets:
                continue
            rows = measure(detector, sets, trained)
            lines, summary = study(detector, rows, title)
            sections += lines
            for r in rows:
                # Each experiment's counts in the Makefile's order of the files, enough to redo the
                # paired differences; the paths are this machine's.
                r["results"]["per_experiment"] = {way: counts_of(r["results"], way).tolist()
                                                  for way in ("judged", "all_rows")}
            rounds[key] = rows, summary
        rows, summary = rounds.pop("sets")
        bench["detectors"][detector] = {"sets": rows, **summary,
                                        **{k: {"sets": r, **s} for k, (r, s) in rounds.items()}}
    publish("skab_options", bench, markdown(bench, sections))
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

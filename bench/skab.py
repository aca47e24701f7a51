"""`make bench` (SKAB part): the SKAB valve1 experiments through examples/skab/Makefile, beside
SKAB's published leaderboard, with each target of issue 18 marked met or missed.

Runs `make -f examples/skab/Makefile SKAB=DATA OUT=bench/work/skab-DETECTOR DETECTOR=...` for
lstm, mahalanobis and pca with the Makefile's defaults (the options chosen on valve1 in
bench/skab_study.md), reads each OUT/results.json (written by `evaluate-scores`), and writes
bench/skab.md and bench/skab.json. DATA is ../shared/data/skab/valve1 or the folder in
SKAB_DIR. Only valve1 is read: valve2 and other are kept for an independent check.

`python bench/skab.py pca` (any of the detectors) measures only those and keeps the others'
figures from bench/skab.json (pca takes about a minute and a half, lstm about twelve).
BENCH_QUICK=1 trains the autoencoder for 2 epochs, to check the benchmark itself; its numbers
mean nothing. SKAB_JOBS (default 2) is make's -j.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from common import HERE, QUICK, ROOT, WORK

DATA = Path(os.environ.get("SKAB_DIR", ROOT.parent / "shared/data/skab/valve1"))
JOBS = os.environ.get("SKAB_JOBS", "2")
MAKEFILE = ROOT / "examples/skab/Makefile"
DETECTORS = ("lstm", "mahalanobis", "pca")
QUICK_TRAIN = {"lstm": "--encoder 32,16 --batch-size 32 --epochs 2 --patience 5 --error last --seed 123"}

# SKAB's leaderboard (README of waico/SKAB, all 34 experiments; FAR and MAR in %, as SKAB counts:
# every row of a file, the 400 fitting rows included); None: not quoted here.
LEADERBOARD = [
    ("Conv-AE", 0.78, 13.6),
    ("MSET", 0.78, 39.7),
    ("T-squared+Q (PCA)", 0.76, 26.6),
    ("LSTM-AE", 0.74, 30.0),
    ("T-squared", 0.66, None),
    ("Isolation forest", 0.29, None),
]
# Issue 18's targets, each detector against the leaderboard entry of its kind.
ABOVE = {"lstm": ("LSTM-AE", 0.74), "pca": ("T-squared+Q (PCA)", 0.76), "mahalanobis": ("T-squared", 0.66)}
AUTOENCODER_F1, AUTOENCODER_FAR = 0.82, 0.20


def log(message: str) -> None:
    print(f"[bench skab {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def command(detector: str, out: Path, train: str | None = None, **variables: str) -> list[str]:
    """The make call for one detector into ``out`` (the CLI run from this interpreter, so that
    the checkout's package is the one measured); ``train``: train options instead of the
    Makefile's; ``variables``: other Makefile variables (SMOOTH="30")."""
    args = ["make", "-f", str(MAKEFILE), f"-j{JOBS}", f"SKAB={DATA}", f"OUT={out}", f"DETECTOR={detector}",
            f"CLI={sys.executable} -m lstm_rare_event", *(f"{k}={v}" for k, v in variables.items())]
    if train is None and QUICK and detector in QUICK_TRAIN:
        train = QUICK_TRAIN[detector]
    return args + ([f"TRAIN={train}"] if train is not None else [])


def run_make(detector: str, out: Path, train: str | None = None, **variables: str) -> dict:
    """The Makefile run once; OUT/results.json as evaluate-scores wrote it, with the minutes taken."""
    args = command(detector, out, train, **variables)
    log(f"{detector}: {shlex.join(args)}")
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"bench skab: {detector} failed:\n{done.stderr[-3000:]}")
    return {"results": json.loads((out / "results.json").read_text()), "minutes": (time.perf_counter() - started) / 60}


def measure(detector: str) -> dict:
    measured = run_make(detector, WORK / f"skab-{detector}")
    measured["results"].pop("per_experiment")  # paths of this machine; the counts are pooled above
    return {"date": datetime.date.today().isoformat(), **measured}


def targets(measured: dict) -> list[dict]:
    """Each target of issue 18: what it asks, what was measured, met or missed and by how much.
    FAR is compared as SKAB counts it (all rows), like the leaderboard's."""
    out = []
    lstm = measured["lstm"]["results"]["all_rows"]
    f1_short, far_over = AUTOENCODER_F1 - lstm["f1"], lstm["far"] - AUTOENCODER_FAR
    misses = [f"F1 {f1_short:.3f} short"] * (f1_short > 0) + [f"FAR {far_over * 100:.1f} points over"] * (far_over > 0)
    out.append({"target": f"autoencoder F1 >= {AUTOENCODER_F1} with FAR <= {AUTOENCODER_FAR:.0%}",
                "measured": f"F1 {lstm['f1']:.3f}, FAR {lstm['far']:.1%}", "met": not misses,
                "by": "; ".join(misses) if misses else f"F1 +{-f1_short:.3f}, FAR {-far_over * 100:.1f} points under"})
    for detector, (entry, bar) in ABOVE.items():
        m = measured[detector]["results"]["all_rows"]
        low, high = m["f1_interval"]
        margin = m["f1"] - bar
        out.append({"target": f"{detector} > {entry} {bar}", "measured": f"F1 {m['f1']:.3f} [{low:.2f}, {high:.2f}]",
                    "met": margin > 0, "by": f"{margin:+.3f}" + (" (the interval reaches below)" if margin > 0
                                                                   and low <= bar else "")})
    return out


def pct(value, interval=None) -> str:
    text = f"{value * 100:.1f}"
    return text + (f" [{interval[0] * 100:.1f}, {interval[1] * 100:.1f}]" if interval else "")


def markdown(bench: dict) -> str:
    lines = [
        "# Benchmark: SKAB valve1 through the command line, beside SKAB's leaderboard",
        "",
        f"Run `python bench/skab.py` (part of `make bench`; `python bench/skab.py DETECTOR...` remeasures only those) "
        f"on {bench['date']}{' (BENCH_QUICK: the numbers mean nothing)' if bench['quick'] else ''}; each detector is",
        "",
        "```",
        *[f"make -f examples/skab/Makefile SKAB=../shared/data/skab/valve1 OUT=bench/work/skab-{d} DETECTOR={d} -j{JOBS}"
          for d in DETECTORS],
        "```",
        "",
        "with the Makefile's defaults (the options chosen on valve1: bench/skab_study.md, bench/skab_smooth.md, "
        "bench/skab_options.md):",
        "",
        "```",
        *bench["options"],
        "```",
        "",
        "THRESHOLD_DETECTOR: the threshold options the Makefile passes for that detector; with SMOOTH_DETECTOR=0, "
        "SKAB's own `--rule quantile --q 0.99 --factor 1.5 --on fit`.",
        "",
        f"{bench['experiments']} experiments, {bench['rows']:,} rows, {bench['judged_rows']:,} judged (from row 400 "
        "of each file on). F1, FAR and MAR are point-wise, pooled over the experiments; the intervals are 95 % "
        "percentile bootstraps resampling whole experiments (1000 replicates). FAR is given over the judged rows "
        "and as SKAB counts (every row of each file, the 400 fitting rows included, as the leaderboard counts): "
        "hold the second against the leaderboard. Rows without a full window count as not flagged.",
        "",
        "| detector | F1 [95 % CI] | FAR % judged rows [CI] | FAR % as SKAB counts [CI] | MAR % [CI] | minutes "
        "| measured |",
        "|---|---|---|---|---|---|---|",
    ]
    for detector in DETECTORS:
        r = bench["detectors"][detector]["results"]
        j, a = r["judged"], r["all_rows"]
        lines.append(f"| {detector} | {a['f1']:.3f} [{a['f1_interval'][0]:.2f}, {a['f1_interval'][1]:.2f}] | "
                     f"{pct(j['far'], j['far_interval'])} | {pct(a['far'], a['far_interval'])} | "
                     f"{pct(a['mar'], a['mar_interval'])} | {bench['detectors'][detector]['minutes']:.1f} | "
                     f"{bench['detectors'][detector]['date']} |")
    lines += ["", "SKAB's leaderboard (all 34 experiments, valve1 is 16 of them: a reference, not a paired "
              "comparison):", "", "| entry | F1 | FAR % |", "|---|---|---|"]
    for entry, f1, far in LEADERBOARD:
        lines.append(f"| {entry} | {f1:.2f} | {'-' if far is None else f'{far:.1f}'} |")
    lines += ["", "Targets (issue 18, on valve1; FAR as SKAB counts):", "", "| target | measured | | by |",
              "|---|---|---|---|"]
    for t in bench["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | **{'met' if t['met'] else 'missed'}** | {t['by']} |")
    lines += ["", f"Last run ({', '.join(bench['measured_now'])}): {bench['bench_minutes']:.1f} minutes.", ""]
    return "\n".join(lines)


def makefile_values(names, **variables: str) -> list[str]:
    """``NAME = value`` of each of the Makefile's variables ``names`` as it expands them, given
    ``variables`` on its command line (make -p would print every rule too)."""
    done = subprocess.run(["make", "-s", "-f", str(MAKEFILE), f"SKAB={DATA}", "OUT=unused",
                           *(f"{k}={v}" for k, v in variables.items()), "--eval",
                           "show: ; @" + " ".join(f"echo '{v} = '\"$({v})\";" for v in names), "show"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()


def makefile_options() -> list[str]:
    """The Makefile's option sets, as it prints them; THRESHOLD as it expands for each detector
    (THRESHOLD_DETECTOR)."""
    variables = ("PREPARE", "TRAIN_lstm", "TRAIN_pca", "SMOOTH_lstm", "SMOOTH_mahalanobis", "SMOOTH_pca",
                 "SMOOTH_FACTOR_pca")
    return makefile_values(variables) + [line.replace("THRESHOLD = ", f"THRESHOLD_{d} = ", 1) for d in DETECTORS
                                         for line in makefile_values(("THRESHOLD",), DETECTOR=d)]


def detector_of(option: str) -> str | None:
    """The detector an option line of :func:`makefile_options` belongs to (NAME_DETECTOR), or None."""
    name = option.split(" = ", 1)[0]
    return next((d for d in DETECTORS if name.endswith(f"_{d}")), None)


def detectors_asked(script: str, argv: list[str], known, default) -> list[str] | None:
    """The detectors a SKAB bench script was given (``default`` without any), or None after a
    one-line error when valve1's folder is missing or a name is not in ``known``."""
    if not DATA.is_dir():
        print(f"bench {script}: SKAB's valve1 folder is needed at {DATA}; set SKAB_DIR to it", file=sys.stderr)
        return None
    chosen = argv or list(default)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        print(f"bench {script}: unknown detector(s) {', '.join(unknown)}; choose from {', '.join(known)}",
              file=sys.stderr)
        return None
    return chosen


def main(argv: list[str]) -> int:
    chosen = detectors_asked("skab", argv, DETECTORS, DETECTORS)
    if chosen is None:
        return 2
    options = makefile_options()
    previous = json.loads((HERE / "skab.json").read_text()) if set(chosen) != set(DETECTORS) else None
    if previous is not None:
        # The kept figures hold only for the options they were measured with.
        shared = [line for line in options if detector_of(line) is None]
        kept = [line for line in options if detector_of(line) not in (None, *chosen)]
        if (previous["quick"] != QUICK or Path(previous["data"]) != DATA
                or not set(shared + kept) <= set(previous["options"])):
            print("bench skab: bench/skab.json was measured on other data, options or BENCH_QUICK setting than "
                  "the detectors not named would have now; measure every detector", file=sys.stderr)
            return 2
    started = time.perf_counter()
    measured = {detector: measure(detector) for detector in chosen}
    if previous is not None:
        kept = {d: {"date": previous["date"], **previous["detectors"][d]} for d in DETECTORS if d not in measured}
        measured = {d: measured[d] if d in measured else kept[d] for d in DETECTORS}
    first = measured[chosen[0]]["results"]
    bench = {"date": datetime.date.today().isoformat(), "quick": QUICK, "data": str(DATA),
             "options": options, "measured_now": chosen, "experiments": first["experiments"], "rows": first["rows"],
             "judged_rows": first["judged_rows"], "detectors": measured, "leaderboard": LEADERBOARD,
             "targets": targets(measured), "bench_minutes": (time.perf_counter() - started) / 60}
    publish("skab", bench, markdown(bench))
    return 0


def publish(name: str, bench: dict, text: str) -> None:
    """Write bench/NAME.json and bench/NAME.md, and print the latter."""
    (HERE / f"{name}.json").write_text(json.dumps(bench, indent=2) + "\n")
    (HERE / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

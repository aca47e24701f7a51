"""`make bench`: the 2019 recipe and the tool's defaults side by side on the real data.

Drives the tool through its own command line, as a user would, on the real sheet-break file
(../shared/data/sheet-break.csv.gz, or the path in SHEET_BREAK_CSV), and writes
bench/results.md and bench/results.json. Every threshold is chosen on validation; the test
split is read once per run, by `evaluate`. Speed figures are ratios against the recipe (or the
Keras engine) measured in the same invocation. bench/scale.py adds memory on a 5,000,000-row
file and training on two worker processes.

BENCH_QUICK=1 runs the same steps with 2 epochs and few repeats, to check the benchmark itself;
its numbers mean nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import CLI, HERE, QUICK, REAL, ROOT, WORK

REPEATS = 2 if QUICK else 5
BOOTSTRAP = 100 if QUICK else 1000

RANDOM_SPLIT = ["--split", "random", "--seed", "123", "--allow-gaps"]
RECIPE_VALUES = ["--detrend", "0", "--clip", "0"]  # the recipe's rows: no detrending, no clipping
RECIPE_TRAIN = ["--arch", "article", "--epochs", "2" if QUICK else "200", "--batch-size", "64",
                "--learning-rate", "1e-4", "--patience", "0", "--seed", "123", "--error", "last"]
RECIPE_THRESHOLD = ["--rule", "value", "--value", "0.3"]
DEFAULT_TRAIN = ["--epochs", "2"] if QUICK else []
ARTICLE = {"tn": 3319, "fp": 286, "fn": 36, "tp": 13, "precision": 0.043, "recall": 0.265, "f1": 0.075,
           "roc_auc": 0.706}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(*args) -> dict:
    """Run the tool; return its stdout, exit code and process wall seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"bench: `lstm-rare-event {' '.join(map(str, args))}` failed:\n{stderr}")
    return {"stdout": stdout, "code": proc.returncode, "wall": wall}


def measured(*args, cap_mib: float | None = None) -> dict:
    """One run of the tool: exit code, peak resident memory in MiB (from the kernel's accounting,
    so a run that died has one too), wall seconds, and the last line of stderr if it failed. A run
    whose memory passes ``cap_mib`` is killed: the machine's other work should not be pushed out."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:  # a file: a full pipe would block the tool
        proc = subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.DEVNULL, stderr=err, text=True)
        capped = False
        while True:
            pid, status, usage = os.wait4(proc.pid, 0 if cap_mib is None else os.WNOHANG)
            if pid:
                break
            if not capped and resident_mib(proc.pid) > cap_mib:
                proc.kill()
                capped = True
            time.sleep(0.1)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        last = (err.read().strip().splitlines() or ["no message"])[-1]
    error = None
    if proc.returncode not in (0, 3):
        error = f"killed past {cap_mib:.0f} MiB" if capped else last
    return {"exit_code": proc.returncode, "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
            "wall_seconds": wall, "error": error}


def resident_mib(pid: int) -> float:
    """Resident memory now (statm's second field, in pages); an unreaped process still has one."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb(*args) -> float:
    """The peak resident memory of one run of the tool, from the kernel's accounting."""
    done = measured(*args)
    if done["error"]:
        raise SystemExit(f"bench: `lstm-rare-event {' '.join(map(str, args))}` failed ({done['exit_code']}): "
                         f"{done['error']}")
    return done["peak_rss_mib"]


def median_wall(*args) -> float:
    return statistics.median(run(*args)["wall"] for _ in range(REPEATS))


def fresh(path: Path) -> Path:
    """``path``, emptied: `train --out` refuses a folder that holds another run's files, and
    `backtest` would resume an earlier walk there instead of timing one."""
    shutil.rmtree(path, ignore_errors=True)
    return path


def pipeline(name: str, prepared: Path, train_args, threshold_args) -> dict:
    """train (into its own run directory), threshold and evaluate; the evaluate report."""
    out = fresh(WORK / name)
    log(f"{name}: train {' '.join(train_args) or '(defaults)'}")
    trained = run("train", prepared, "--out", out, "--json", "-q", *train_args)
    run("threshold", out, "-q", *threshold_args)
    report = json.loads(run("evaluate", out, "--json", "-q")["stdout"])
    without_break_times(report)
    report["train"] = json.loads(trained["stdout"])["detector"]  # the fit: epochs, losses, wall time
    report["train"]["process_wall_seconds"] = trained["wall"]
    return report


def without_break_times(report: dict) -> dict:
    """Drop the per-break list: the results are committed, and the break times are the data's."""
    report["events"].pop("breaks", None)
    report.get("episodes", {}).pop("breaks", None)
    return report


def test_scores(run_dir: Path) -> tuple[np.ndarray, object]:
    """Test scores of a trained run's detector, computed exactly as `evaluate` does."""
    from lstm_rare_event.run import Run

    run = Run(run_dir)
    with run.reading():
        test = run.split("test")
        return run.detector().score(test), test


def prepared(name: str, args) -> Path:
    out = WORK / f"prepared-{name}"
    log(f"prepare {name}: {' '.join(args) or '(defaults)'}")
    run("prepare", REAL, "--out", out, "-q", *args)
    return out


def split_results(label: str, split_args) -> dict:
    """Recipe, defaults and the two references on one split (the same windows for all, since
    the split depends on the times alone), with bootstrap intervals. The references run
    through the same commands as the autoencoder (`train --detector`, `threshold`, `evaluate`)."""
    from lstm_rare_event.alarms.bootstrap import bootstrap_metrics, event_groups

    ours = prepared(f"defaults-{label}", split_args)
    recipe = prepared(f"recipe-{label}", [*split_args, *RECIPE_VALUES])
    # defaults first: the paired differences are taken as defaults minus each other run
    runs = {
        "defaults": pipeline(f"defaults-{label}", ours, DEFAULT_TRAIN, []),
        "recipe": pipeline(f"recipe-{label}", recipe, RECIPE_TRAIN, RECIPE_THRESHOLD),
        "mahalanobis": pipeline(f"mahalanobis-{label}", ours, ["--detector", "mahalanobis"], []),
        "restart": pipeline(f"restart-{label}", ours, ["--detector", "restart"], []),
    }
    scores = {}
    for name in runs:
        scores[name], test = test_scores(WORK / f"{name}-{label}")
    log(f"{label}: bootstrap ({BOOTSTRAP} replicates, resampled by break event)")
    intervals = bootstrap_metrics(test.y, scores, event_groups(test.y, test.event_time, test.end_time), n=BOOTSTRAP, seed=0)
    return {"runs": runs, "bootstrap": intervals}


def speed() -> dict:
    """Process wall times (medians) and peak memory, each with the recipe's in the same run."""
    log("speed: prepare")
    tmp = WORK / "speed"
    prepare_ours = median_wall("prepare", REAL, "--out", tmp / "p-ours", "-q")
    prepare_recipe = median_wall("prepare", REAL, "--out", tmp / "p-recipe", "-q", *RANDOM_SPLIT, *RECIPE_VALUES)

    run_dir = WORK / "defaults-time"
    day = tmp / "one-day.csv"
    whole = tmp / "whole.csv"
    write_slice(day, rows=720)
    write_slice(whole, rows=None)
    log("speed: score")
    score = {}
    for label, path in (("one_day_720_rows", day), ("whole_file", whole)):
        score[label] = {
            engine: median_wall("score", run_dir, path, "--out", tmp / f"s-{engine}.csv", "-q", "--engine", engine)
            for engine in ("numpy", "keras")
        }
    log("speed: backtest of the whole file, daily folds from 40 %")
    walk = ["--start", "40%", "--every", "1d", "-q", "--replicates", "100"]
    backtest_seconds = {
        detector: run("backtest", REAL, "--out", fresh(tmp / f"bt-{detector}"), "--detector", detector, *walk,
                      *(["--epochs", "2"] if QUICK and detector == "lstm" else []))["wall"]
        for detector in ("mahalanobis", "lstm")
    }
    big = tmp / "million.csv"
    log("speed: writing a 1,000,000-row file from the real rows")
    write_repeated(big, 1_000_000)
    log("speed: peak memory of score on 1,000,000 rows")
    rss = peak_rss_mb("score", run_dir, big, "--out", tmp / "s-million.csv", "-q")
    big.unlink()
    return {
        "prepare_seconds": {"defaults": prepare_ours, "recipe_flags": prepare_recipe},
        "score_seconds": score,
        "score_million_rows_peak_rss_mb": rss,
        "backtest_seconds": backtest_seconds,
        "repeats": REPEATS,
    }


def read_real():
    import pandas as pd

    return pd.read_csv(REAL)


def write_slice(path: Path, rows: int | None) -> None:
    frame = read_real()
    (frame if rows is None else frame.head(rows)).to_csv(path, index=False)


def write_repeated(path: Path, rows: int) -> None:
    """The real rows over and over, timestamps advancing, labels dropped: a long plant history."""
    import pandas as pd

    frame = read_real().drop(columns=["y"])
    times = pd.to_datetime(frame["time"], format="%m/%d/%y %H:%M")
    span = times.iloc[-1] - times.iloc[0] + pd.Timedelta(minutes=2)
    with open(path, "w") as handle:
        written, copy = 0, 0
        while written < rows:
            part = frame.head(rows - written).copy()
            part["time"] = (times.head(len(part)) + copy * span).dt.strftime("%Y-%m-%dT%H:%M:%S")
            part.to_csv(handle, index=False, header=copy == 0)
            written += len(part)
            copy += 1


def versions() -> dict:
    from importlib.metadata import version

    from lstm_rare_event.version import __version__

    names = ["tensorflow", "keras", "numpy", "pandas", "scikit-learn"]
    return {"lstm-rare-event": __version__, **{name: version(name) for name in names}}


def real_data_missing() -> bool:
    if REAL.exists():
        return False
    print(f"bench: the real data set is needed at {REAL}; set SHEET_BREAK_CSV to its path "
          "(the ProcessMiner sheet-break CSV, plain or .gz)", file=sys.stderr)
    return True


def write_results(results: dict) -> None:
    """bench/results.json, and bench/results.md rendered from it."""
    from report import markdown  # bench/report.py: the tables

    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "results.md").write_text(markdown(results))


def main() -> int:
    if real_data_missing():
        return 2
    from scale import measure as scale  # bench/scale.py: memory on 5,000,000 rows, training on two workers
    from throughput import measure as throughput  # bench/throughput.py: score rows/s against the code before

    WORK.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": versions(),
        "quick": QUICK,
        "article": ARTICLE,
        "random": split_results("random", RANDOM_SPLIT),
        "time": split_results("time", []),
    }
    results["speed"] = speed()
    results["throughput"] = throughput(repeats=1 if QUICK else 3)
    results["scale"] = scale()
    results["bench_minutes"] = (time.perf_counter() - started) / 60
    write_results(results)
    log(f"done in {results['bench_minutes']:.1f} min: bench/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

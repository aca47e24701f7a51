"""Issue 12, past one machine: the peak memory of each step on a 5,000,000-row file beside what
holding its windows in memory would take, and training time with two worker processes beside one.

`python bench/scale.py` measures, replaces the "scale" key of bench/results.json and renders
bench/results.md again; `make bench` (bench/run.py) measures the same. Environment:
SCALE_ROWS rows of the synthetic file (5,000,000; 200,000 with BENCH_QUICK=1), SCALE_EPOCHS
training epochs on the real file (5), SCALE_CAP_MB the memory at which a step is killed (8192),
and bench/run.py's SHEET_BREAK_CSV and BENCH_WORK.

A step that fails (a MemoryError, a kill at the cap) is recorded with its exit code and the
peak memory it reached; the steps after it are skipped.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import time

from run import HERE, QUICK, REAL, ROOT, WORK, log, measured, real_data_missing, run, write_results

sys.path.insert(0, str(ROOT / "tests"))
from cluster import train_cluster  # noqa: E402  (tests/cluster.py: the distributed test's cluster)

ROWS = int(os.environ.get("SCALE_ROWS", 200_000 if QUICK else 5_000_000))
EPOCHS = int(os.environ.get("SCALE_EPOCHS", 5))
CAP_MIB = float(os.environ.get("SCALE_CAP_MB", 8192))  # far past the target, short of the machine
LIMIT_MIB = 2048  # issue 12: every step of a 5,000,000-row file in under 2 GB
CLUSTER_TIMEOUT = 1800


def materialized(windows: int | None, prepared: dict | None) -> dict:
    """``windows`` as one float32 array of lookback x n_features each, the alternative to streaming."""
    mib = None if windows is None else windows * prepared["lookback"] * prepared["n_features"] * 4 / 2**20
    return {"materialized_windows": windows, "materialized_mib": mib}


def step(name: str, *args) -> dict:
    load = os.getloadavg()[0]
    log(f"scale: {name} (load average {load:.1f})")
    done = measured(name, *args, cap_mib=CAP_MIB)
    done["load_average_before"] = load
    done["under_limit"] = done["error"] is None and done["peak_rss_mib"] < LIMIT_MIB
    log(f"scale: {name}: {done['peak_rss_mib']:.0f} MiB peak, {done['wall_seconds']:.1f} s"
        + (f", failed ({done['exit_code']}): {done['error']}" if done["error"] else ""))
    return done


def memory() -> dict:
    """prepare, train (1 epoch), threshold and score on ROWS synthetic rows, each step's peak memory."""
    folder = WORK / "scale"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    big, run_dir = folder / "big.csv", folder / "run"
    log(f"scale: writing {ROWS:,} synthetic rows")
    run("demo-data", "--rows", ROWS, "--out", big, "-q")
    plan = {"prepare": [big, "--out", run_dir], "train": [run_dir, "--epochs", 1],
            "threshold": [run_dir], "score": [run_dir, big, "--out", folder / "scores.csv"]}
    steps = {}
    for name, args in plan.items():
        failed = next((earlier for earlier, done in steps.items() if done.get("error")), None)
        steps[name] = {"skipped": f"{failed} failed"} if failed else step(name, *args, "-q")
    info = run_dir / "prepare.json"
    prepared = json.loads(info.read_text()) if info.exists() else None
    windows = {"prepare": None, "train": None, "threshold": None, "score": None}
    if prepared:
        split = {name: s["windows"] for name, s in prepared["splits"].items()}
        # score windows the whole input: every row that has lookback - 1 rows before it
        windows = {"prepare": prepared["windows"], "train": split["train"] + split["valid"],
                   "threshold": split["valid"], "score": ROWS - prepared["lookback"] + 1}
    for name, done in steps.items():
        done.update(materialized(windows[name], prepared))
    shutil.rmtree(folder)  # gigabytes at full size
    return {"rows": ROWS, "limit_mib": LIMIT_MIB, "cap_mib": CAP_MIB,
            "lookback": prepared and prepared["lookback"], "n_features": prepared and prepared["n_features"],
            **materialized(windows["prepare"], prepared), "steps": steps}


def fit(detector: dict, wall: float, load: float) -> dict:
    keep = ("epochs_run", "seconds_per_epoch", "final_val_loss", "best_val_loss")
    return {"wall_seconds": wall, "fit_seconds": detector["wall_seconds"], "load_average_before": load,
            **{key: detector[key] for key in keep}}


def training() -> dict:
    """The default network on the real file, EPOCHS epochs: one process, mirrored in one process,
    and two workers on 127.0.0.1 (the whole cluster's wall time, start to both done)."""
    folder = WORK / "scale-training"
    shutil.rmtree(folder, ignore_errors=True)
    prepared = folder / "prepared"
    log("scale: prepare the real file")
    run("prepare", REAL, "--out", prepared, "-q")
    train = ["train", prepared, "--epochs", EPOCHS, "--patience", "0", "--seed", "1", "-q"]
    runs = {}
    for name, extra in (("single", []), ("mirrored", ["--distribute", "mirrored"])):
        load = os.getloadavg()[0]
        log(f"scale: train {name}, {EPOCHS} epochs (load average {load:.1f})")
        wall = run(*train, "--out", folder / name, *extra)["wall"]
        runs[name] = fit(json.loads((folder / name / "train.json").read_text())["detector"], wall, load)
    load = os.getloadavg()[0]
    log(f"scale: train on two workers, {EPOCHS} epochs (load average {load:.1f})")
    outs, errs = [folder / "multi-worker", folder / "worker-1"], [folder / f"worker-{i}.err" for i in range(2)]
    start = time.perf_counter()
    codes = train_cluster(train, outs, errs, timeout=CLUSTER_TIMEOUT)
    wall = time.perf_counter() - start
    if codes == [0, 0]:
        runs["multi_worker"] = fit(json.loads((outs[0] / "train.json").read_text())["detector"], wall, load)
    else:
        last = [(err.read_text().strip().splitlines() or ["no message"])[-1] for err in errs]
        runs["multi_worker"] = {"wall_seconds": wall, "load_average_before": load, "exit_codes": codes,
                                "error": "; ".join(f"worker {i} ({c}): {m}" for i, (c, m) in enumerate(zip(codes, last)))}
    for done in runs.values():
        done["ratio_to_single"] = done["wall_seconds"] / runs["single"]["wall_seconds"]
    return {"epochs": EPOCHS, "workers": len(outs), "runs": runs}


def measure() -> dict:
    return {"date": datetime.date.today().isoformat(), "memory": memory(), "training": training()}


def main() -> int:
    if real_data_missing():
        return 2
    results = json.loads((HERE / "results.json").read_text())
    results["scale"] = measure()
    write_results(results)
    log("scale: bench/results.json and bench/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

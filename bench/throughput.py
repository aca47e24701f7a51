"""Issues 12 and 20: rows per second of ``score`` on a long file, for both detectors, against a git
ref, and how close ``score`` comes to its floors.

    python bench/throughput.py [--ref main] [--rows 1000000] [--repeats 3]

Builds (once, under bench/work/ or BENCH_WORK) a file of the real rows repeated with advancing
timestamps (as ``make bench`` does) and two runs on the real data with the default options, an
lstm and a mahalanobis one. Then times the whole ``score`` process with this checkout's code and
with the code of ``--ref`` (extracted with ``git archive``), alternating the two so that both
see the same load, and checks that both write the same bytes. Wall seconds are medians over the
repeats; the ratio ref/current is the figure that means something on a shared machine.

The floors (issue 20), each timed alternately with what it bounds: ``pandas.read_csv`` of the same
file in a process of its own (the parse floor; target score/read_csv <= 1.5), and ``python -c
"import numpy"`` beside a one-row ``score --state`` call of the lstm run (target <= 1.2).

:func:`measure` returns the same figures as a dict, for bench/run.py.
"""

from __future__ import annotations

import argparse
import datetime
import filecmp
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from common import HERE, ROOT, WORK

DETECTORS = ("lstm", "mahalanobis")
#: main before issue 12's work on data larger than memory and on throughput: the baseline
BASELINE_REF = "dd303dd"
#: issue 20's targets
ROWS_PER_SECOND = 100_000
PARSE_RATIO = 1.5
SMALL_CALL_RATIO = 1.2
SMALL_CALLS = 5  # one-row calls timed, each on a new row


def _python(code: str) -> float:
    """Wall seconds of ``python -c code``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def small_call(data: Path, run: Path, tmp: Path, calls: int = SMALL_CALLS) -> dict:
    """Median wall seconds of a one-row ``score --state`` call (a state made from 1,000 rows before)
    and of ``python -c "import numpy"``, alternately."""
    with open(data, encoding="utf-8") as handle:
        lines = [handle.readline() for _ in range(1001 + calls)]
    (tmp / "first.csv").write_text("".join(lines[:1001]), encoding="utf-8")
    state, out = tmp / "small.state", tmp / "small.csv"
    _tool(ROOT, "score", run, tmp / "first.csv", "--state", state, "--out", out)
    walls = {"score": [], "import_numpy": []}
    for i in range(calls):
        row = tmp / f"row-{i}.csv"
        row.write_text(lines[0] + lines[1001 + i], encoding="utf-8")
        walls["score"].append(_tool(ROOT, "score", run, row, "--state", state, "--out", out))
        walls["import_numpy"].append(_python("import numpy"))
    median = {k: statistics.median(v) for k, v in walls.items()}
    return {"calls": calls, "score_wall_seconds": median["score"], "import_numpy_wall_seconds": median["import_numpy"],
            "ratio": median["score"] / median["import_numpy"], "target": SMALL_CALL_RATIO,
            "met": median["score"] / median["import_numpy"] <= SMALL_CALL_RATIO, "walls": walls}


def _tool(code: Path, *args, quiet: bool = True) -> float:
    """Run the CLI of the code in ``code``; return its wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    # As installed (pip compiles the package's bytecode): a PYTHONDONTWRITEBYTECODE left in the
    # environment would have every call compile the package's ~60 modules again, some 40 ms of
    # a small call (NumPy's bytecode, beside which it is timed, is there already).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lstm_rare_event", *map(str, args), *(["-q"] if quiet else [])],
                          cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"throughput: `lstm-rare-event {' '.join(map(str, args))}` ({code}) failed:\n{proc.stderr}")
    return wall


def build(work: Path, rows: int) -> tuple[Path, dict[str, Path]]:
    """The input file and one run per detector, made when missing."""
    sys.path.insert(0, str(HERE))
    from run import REAL, write_repeated  # bench/run.py: the same input as make bench

    work.mkdir(parents=True, exist_ok=True)
    data = work / f"repeated-{rows}.csv"
    if not data.exists():
        partial = data.with_suffix(".partial")
        write_repeated(partial, rows)
        partial.replace(data)
    runs = {name: work / f"throughput-{name}" for name in DETECTORS}
    if not (runs["lstm"] / "threshold.json").exists():
        _tool(ROOT, "prepare", REAL, "--out", runs["lstm"])
        _tool(ROOT, "train", runs["lstm"])
        _tool(ROOT, "threshold", runs["lstm"])
    if not (runs["mahalanobis"] / "threshold.json").exists():
        _tool(ROOT, "train", runs["lstm"], "--detector", "mahalanobis", "--out", runs["mahalanobis"])
        _tool(ROOT, "threshold", runs["mahalanobis"])
    return data, runs


def _extract(ref: str, into: Path) -> str:
    """The tree of ``ref`` in ``into``; returns its commit."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT, check=True,
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    archive = into / "ref.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), commit], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "code", filter="data")
    archive.unlink()
    return commit


def measure(ref: str = BASELINE_REF, rows: int = 1_000_000, repeats: int = 3, work: Path = WORK) -> dict:
    """Score throughput of this checkout and of ``ref`` on ``rows`` rows, both detectors."""
    data, runs = build(Path(work), rows)
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        tmp = Path(tmp)
        commit = _extract(ref, tmp)
        sides = {"current": ROOT, "baseline": tmp / "code"}
        walls = {name: {side: [] for side in sides} for name in DETECTORS}
        parse = []
        identical = {}
        load = os.getloadavg()[0]
        for _ in range(repeats):
            for name in DETECTORS:
                for side, code in sides.items():
                    out = tmp / f"{name}-{side}.csv"
                    walls[name][side].append(_tool(code, "score", runs[name], data, "--out", out))
                    if side == "current":
                        parse.append(_python(f"import pandas; pandas.read_csv({str(data)!r})"))
                same = filecmp.cmp(tmp / f"{name}-current.csv", tmp / f"{name}-baseline.csv", shallow=False)
                identical[name] = identical.get(name, True) and same
        small = small_call(data, runs["lstm"], tmp)
    result = {"date": datetime.date.today().isoformat(), "rows": rows, "repeats": repeats, "ref": ref,
              "ref_commit": commit,
              "load_average_before": load, "read_csv_wall_seconds": statistics.median(parse),
              "read_csv_walls": parse, "small_call": small, "detectors": {}}
    for name in DETECTORS:
        median = {side: statistics.median(values) for side, values in walls[name].items()}
        result["detectors"][name] = {
            **{f"{side}_wall_seconds": median[side] for side in sides},
            **{f"{side}_rows_per_second": rows / median[side] for side in sides},
            "speedup": median["baseline"] / median["current"],
            "identical_output": identical[name],
            "rows_per_second_met": rows / median["current"] >= ROWS_PER_SECOND,
            "ratio_to_read_csv": median["current"] / result["read_csv_wall_seconds"],
            "ratio_to_read_csv_met": median["current"] / result["read_csv_wall_seconds"] <= PARSE_RATIO,
            "walls": walls[name],
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default=BASELINE_REF, help=f"the git ref whose code is the baseline (default "
                        f"{BASELINE_REF}, main before issue 12)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--save", action="store_true", help="put the figures into bench/results.json and .md")
    args = parser.parse_args()
    result = measure(args.ref, args.rows, args.repeats)
    if args.save:
        from run import write_results  # bench/run.py

        write_results({**json.loads((HERE / "results.json").read_text()), "throughput": result})
    for name, figures in result["detectors"].items():
        print(f"{name:12s} current {figures['current_rows_per_second']:>9,.0f} rows/s "
              f"({figures['current_wall_seconds']:.1f} s), {args.ref} {figures['baseline_rows_per_second']:>9,.0f} rows/s "
              f"({figures['baseline_wall_seconds']:.1f} s): {figures['speedup']:.2f}x, "
              f"output {'identical' if figures['identical_output'] else 'DIFFERS'}; "
              f"{'met' if figures['rows_per_second_met'] else 'MISSED'} (>= {ROWS_PER_SECOND:,} rows/s); "
              f"score / read_csv {figures['ratio_to_read_csv']:.2f} "
              f"({'met' if figures['ratio_to_read_csv_met'] else 'MISSED'}, <= {PARSE_RATIO})")
    small = result["small_call"]
    print(f"one-row score --state {small['score_wall_seconds']:.2f} s, import numpy {small['import_numpy_wall_seconds']:.2f} s: "
          f"{small['ratio']:.2f} ({'met' if small['met'] else 'MISSED'}, <= {SMALL_CALL_RATIO})")
    print(json.dumps(result, indent=1))
    return 0 if all(f["identical_output"] for f in result["detectors"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

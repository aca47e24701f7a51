"""Issue 20: latency of ``score --follow``, from a row's append to its line in ``--out``.

    python bench/follow.py [--rows 200] [--save]

Starts ``score RUN INPUT --follow --state ... --out ...`` on a file holding the first 1,000 rows
of the real data, waits for them to be scored, then appends the next rows one at a time (a
write and a flush, as a historian does) and times each until its line is in ``--out``: the
median over the rows is the figure (target <= 50 ms). Rows are appended at uneven intervals
(30-130 ms), so that they fall anywhere in the follower's poll cycle. A row that ends no window
(a break row, dropped by the label shift, or one after a time gap) writes no line and is not
counted. The follower's CPU time per row (from /proc, the polls between rows included) and
the load average are reported beside it: on a busy machine the wall time is mostly waiting for
a core.

The runs are bench/throughput.py's (the real data, default options; made by ``make bench``
before this) when they are there; otherwise an lstm (2 epochs: the latency depends on the
network's size, not its weights) and a mahalanobis run are made under bench/work/.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CLI, HERE, REAL, ROOT, WORK

DETECTORS = ("lstm", "mahalanobis")
TARGET_SECONDS = 0.050
CONTEXT_ROWS = 1000
NO_LINE_SECONDS = 1.0  # a row without a line by then ends no window


def _tool(*args) -> None:
    done = subprocess.run([*CLI, *map(str, args), "-q"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    if done.returncode not in (0, 3):
        raise SystemExit(f"follow bench: `lstm-rare-event {' '.join(map(str, args))}` failed:\n{done.stderr}")


def runs() -> dict[str, Path]:
    made = {name: WORK / f"throughput-{name}" for name in DETECTORS}
    if all((run / "threshold.json").exists() for run in made.values()):
        return made
    made = {name: WORK / f"follow-{name}" for name in DETECTORS}
    if not (made["lstm"] / "threshold.json").exists():
        _tool("prepare", REAL, "--out", made["lstm"])
        _tool("train", made["lstm"], "--epochs", "2")
        _tool("threshold", made["lstm"])
    if not (made["mahalanobis"] / "threshold.json").exists():
        _tool("train", made["lstm"], "--detector", "mahalanobis", "--out", made["mahalanobis"])
        _tool("threshold", made["mahalanobis"])
    return made


def _size(path: Path) -> int:
    return path.stat().st_size


def _cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of process ``pid`` so far (Linux's /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait(condition, seconds: float) -> bool:
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.0005)
    return True


def latency(run: Path, lines: list[str], rows: int, tmp: Path, seed: int = 0) -> dict:
    """Seconds from each row's append to its line in --out (rows that end a window)."""
    grow, state, out = tmp / f"{run.name}.csv", tmp / f"{run.name}.state", tmp / f"{run.name}.scores.csv"
    grow.write_text("".join(lines[:CONTEXT_ROWS + 1]), encoding="utf-8")
    proc = subprocess.Popen([*CLI, "score", str(run), str(grow), "--follow", "--state", str(state), "--out", str(out),
                             "-q"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    rng = random.Random(seed)
    try:
        if not _wait(lambda: state.exists() and json.loads(state.read_text())["rows"] == CONTEXT_ROWS, 300):
            raise SystemExit(f"follow bench: the first {CONTEXT_ROWS} rows were not scored")
        seconds, no_line = [], 0
        cpu = _cpu_seconds(proc.pid)
        with open(grow, "a", encoding="utf-8", newline="") as handle:
            for line in lines[CONTEXT_ROWS + 1:CONTEXT_ROWS + 1 + rows]:
                before = _size(out)
                time.sleep(rng.uniform(0.03, 0.13))
                start = time.perf_counter()
                handle.write(line)
                handle.flush()
                if _wait(lambda: _size(out) > before, NO_LINE_SECONDS):  # a batch's lines are one write
                    seconds.append(time.perf_counter() - start)
                else:
                    no_line += 1
        if cpu is not None:
            cpu = (_cpu_seconds(proc.pid) - cpu) / rows
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    if code != 0:
        raise SystemExit(f"follow bench: score --follow exited {code}:\n{proc.stderr.read()}")
    median = statistics.median(seconds)
    return {"rows": len(seconds), "rows_without_a_line": no_line, "median_ms": 1000 * median,
            "p90_ms": 1000 * statistics.quantiles(seconds, n=10)[-1], "max_ms": 1000 * max(seconds),
            "cpu_ms_per_row": None if cpu is None else 1000 * cpu, "load_average": os.getloadavg()[0],
            "target_ms": 1000 * TARGET_SECONDS, "met": median <= TARGET_SECONDS}


def measure(rows: int = 200) -> dict:
    with gzip.open(REAL, "rt", encoding="utf-8", newline="") as handle:
        lines = handle.readlines()
    found = runs()
    with tempfile.TemporaryDirectory() as tmp:
        return {name: {"run": str(run), **latency(run, lines, rows, Path(tmp))} for name, run in found.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="rows appended one at a time, per detector")
    parser.add_argument("--save", action="store_true", help="write the figures to bench/follow.json")
    args = parser.parse_args()
    result = measure(args.rows)
    for name, figures in result.items():
        print(f"score --follow {name:12s} append to line: median {figures['median_ms']:.1f} ms, "
              f"p90 {figures['p90_ms']:.1f} ms, max {figures['max_ms']:.1f} ms over {figures['rows']} rows: "
              f"{'met' if figures['met'] else 'MISSED'} (<= {figures['target_ms']:.0f} ms); the follower's CPU "
              f"{figures['cpu_ms_per_row']:.1f} ms per row (polls included), "
              f"load average {figures['load_average']:.1f}")
    if args.save:
        (HERE / "follow.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

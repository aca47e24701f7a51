"""score --follow: resident, each batch of appended rows a --state call. Killed with -9 between
the output append and the state write and started again, it writes the bytes of one batch
call; it follows day files by their strftime pattern, a pipe, a RUN link swapped to another
run; SIGTERM exits 0, Ctrl-C 130, the lock free between batches.

Subprocess tests wait for a file's content with a timeout, never for a fixed time; in-process
tests drive the follower through its ``wait`` (called only when nothing is new), so each step
happens at a known point.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from filelock import FileLock
from conftest import ROOT, copy_run, fails, ok

from lstm_rare_event.alerts.sinks import SinkOptions
from lstm_rare_event.scoring.engine import ScoreOptions
from lstm_rare_event.scoring.follow import FollowOptions, GrowingFile, follow
from lstm_rare_event.synthetic import make_sheet_breaks

# Sends itself LRE_SIGNAL (SIGKILL) at the LRE_KILL_AT-th batch's point between the output
# append and the state write.
KILL_AT = """
import os, signal, sys
from lstm_rare_event.scoring import calls
count = [0]
def checkpoint(label):
    count[0] += 1
    if count[0] == int(os.environ.get("LRE_KILL_AT", "0")):
        os.kill(os.getpid(), getattr(signal, os.environ.get("LRE_SIGNAL", "SIGKILL")))
calls.checkpoint = checkpoint
from lstm_rare_event.cli import cli
cli(sys.argv[1:])
"""
TIMEOUT = 60


@pytest.fixture(scope="module")
def lines():
    """900 two-minute rows (30 hours from 1999-05-01 00:00) as CSV lines, the header first."""
    text = make_sheet_breaks(900, seed=5).to_csv(index=False, lineterminator="\n")
    return text.splitlines(keepends=True)


def append(path, lines):
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write("".join(lines))


def batch_output(run_dir, lines, tmp_path):
    """What one batch `score` of these lines writes."""
    (tmp_path / "all.csv").write_text("".join(lines), encoding="utf-8")
    ok("score", run_dir, tmp_path / "all.csv", "--out", tmp_path / "batch.csv", "-q")
    return (tmp_path / "batch.csv").read_bytes()


def wait_until(condition, what):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"waited {TIMEOUT} s for {what}"
        time.sleep(0.01)


def state_rows(state):
    try:
        return json.loads(state.read_text())["rows"]
    except FileNotFoundError:
        return None


def start(*args, kill_at=0, sending="SIGKILL", **popen):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LRE_KILL_AT": str(kill_at), "LRE_SIGNAL": sending}
    return subprocess.Popen([sys.executable, "-c", KILL_AT, "score", *map(str, args), "--follow", "-q"], env=env,
                            stderr=subprocess.PIPE, **popen)


def test_killed_between_output_and_state_then_restarted_writes_the_batch_bytes(runs, lines, tmp_path):
    run_dir = runs["mahalanobis"]
    expected = batch_output(run_dir, lines, tmp_path)
    grow, state, out = tmp_path / "grow.csv", tmp_path / "score.state", tmp_path / "scores.csv"
    append(grow, lines[:101])
    first = start(run_dir, grow, "--state", state, "--out", out, kill_at=2)
    wait_until(lambda: state_rows(state) == 100, "the first batch's state")
    append(grow, lines[101:151])  # the second batch dies after appending its windows
    assert first.wait(TIMEOUT) == -signal.SIGKILL, first.stderr.read()
    recorded = json.loads(state.read_text())["output"]["bytes"]
    assert out.stat().st_size > recorded  # killed after appending, before saving the state

    again = start(run_dir, grow, "--state", state, "--out", out)
    append(grow, lines[151:400])
    append(grow, [lines[400][:15]])  # half a line: left for the next batch
    wait_until(lambda: state_rows(state) == 399, "the rows before the half line")
    # between batches the lock is free and status reads the state
    with FileLock(str(state) + ".lock", timeout=5):
        pass
    ok("status", run_dir, "--state", state)
    append(grow, [lines[400][15:], *lines[401:]])
    wait_until(lambda: out.read_bytes() == expected, "the output of every row")
    again.send_signal(signal.SIGTERM)
    assert again.wait(TIMEOUT) == 0, again.stderr.read()
    assert out.read_bytes() == expected


def test_sigterm_in_a_batch_finishes_it_and_exits_0(runs, lines, tmp_path):
    grow, state, out = tmp_path / "grow.csv", tmp_path / "score.state", tmp_path / "scores.csv"
    append(grow, lines[:101])
    proc = start(runs["mahalanobis"], grow, "--state", state, "--out", out, kill_at=2, sending="SIGTERM")
    wait_until(lambda: state_rows(state) == 100, "the first batch's state")
    append(grow, lines[101:151])
    assert proc.wait(TIMEOUT) == 0, proc.stderr.read()
    saved = json.loads(state.read_text())
    assert saved["rows"] > 100 and saved["output"]["bytes"] == out.stat().st_size  # saved, not undone


def test_a_pipe_is_scored_as_it_comes_and_ends_with_it(runs, lines, tmp_path):
    run_dir = runs["mahalanobis"]
    expected = batch_output(run_dir, lines[:301], tmp_path)
    state, out = tmp_path / "score.state", tmp_path / "scores.csv"
    proc = start(run_dir, "-", "--state", state, "--out", out, stdin=subprocess.PIPE)
    proc.stdin.write("".join(lines[:200]).encode())
    proc.stdin.flush()
    wait_until(lambda: state_rows(state) == 199, "the first rows, before the pipe closes")
    proc.stdin.write("".join(lines[200:301]).rstrip("\n").encode())  # the last line without its line end
    proc.stdin.close()
    assert proc.wait(TIMEOUT) == 0, proc.stderr.read()
    assert out.read_bytes() == expected


def test_ctrl_c_exits_130(runs, lines, tmp_path):
    grow, state, out = tmp_path / "grow.csv", tmp_path / "score.state", tmp_path / "scores.csv"
    append(grow, lines[:50])
    proc = start(runs["mahalanobis"], grow, "--state", state, "--out", out)
    wait_until(lambda: state_rows(state) == 49, "the first batch")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(TIMEOUT) == 130
    assert "interrupted" in proc.stderr.read().decode().lower()


class Scripted(GrowingFile):
    """A day-file pattern followed on a clock the test sets; each ``wait`` (nothing new to
    read) runs the next step, and after the last one sends SIGTERM."""

    def __init__(self, pattern, steps, clock):
        self.steps, self.now = list(steps), clock
        super().__init__(pattern, clock=lambda: self.now)

    def wait(self, seconds):
        if self.steps:
            self.steps.pop(0)(self)
        else:
            os.kill(os.getpid(), signal.SIGTERM)


def local(*fields):
    return time.mktime((*fields, 0, 0, -1))


def test_day_files_are_followed_to_the_next_day_and_a_missing_one_is_told(runs, lines, tmp_path):
    run_dir, folder = runs["mahalanobis"], tmp_path / "incoming"
    header, rows = lines[0], lines[1:]
    expected = batch_output(run_dir, lines, tmp_path)
    day1, day2 = folder / "1999-05-01.csv", folder / "1999-05-02.csv"
    midnight = next(i for i, line in enumerate(rows) if line.startswith("5/2/99"))

    def set_clock(t):
        def step(source):
            source.now = t
        return step

    steps = [
        lambda s: (folder.mkdir(), append(day1, [header, *rows[:100]])),  # the day's file appears
        lambda s: append(day1, rows[100:midnight - 5]),
        set_clock(local(1999, 5, 2, 0, 10, 0)),  # a new day, its file not there yet
        lambda s: (append(day1, rows[midnight - 5:midnight]), append(day2, [header, *rows[midnight:midnight + 3]])),
        lambda s: append(day2, rows[midnight + 3:]),
    ]
    state, out, alerts = tmp_path / "score.state", tmp_path / "scores.csv", tmp_path / "alerts.jsonl"
    source = Scripted(str(folder / "%Y-%m-%d.csv"), steps, local(1999, 5, 1, 9, 0, 0))
    options = ScoreOptions(sinks=SinkOptions(alert_log=alerts))
    summary = follow(run_dir, source.pattern, out, state, options, source=source, settings=FollowOptions(poll=0.001))
    assert out.read_bytes() == expected
    assert summary["stopped"] == "SIGTERM" and summary["rows"] == len(rows)
    told = [json.loads(line) for line in alerts.read_text().splitlines()]
    missing = [(e["event"], e["message"]) for e in told if e.get("condition") == "missing input"]
    assert [event for event, _ in missing] == ["condition-started", "condition-cleared"], told
    assert "1999-05-01.csv: file not found" in missing[0][1]


def test_a_file_replaced_is_read_again_from_its_start(runs, lines, tmp_path):
    run_dir = runs["mahalanobis"]
    expected = batch_output(run_dir, lines[:401], tmp_path)
    grow, state, out = tmp_path / "grow.csv", tmp_path / "score.state", tmp_path / "scores.csv"
    append(grow, lines[:201])

    def rotate(source):  # a new file in its place: some rows seen again, then new ones
        (tmp_path / "new.csv").write_text("".join([lines[0], *lines[150:401]]), encoding="utf-8")
        os.replace(tmp_path / "new.csv", grow)

    follow(run_dir, str(grow), out, state, source=Scripted(str(grow), [rotate], time.time()),
           settings=FollowOptions(poll=0.001))
    assert out.read_bytes() == expected


def test_a_swapped_run_link_is_loaded_and_its_state_adopted(runs, lines, tmp_path):
    first = copy_run(runs["mahalanobis"], tmp_path, "first")
    second = copy_run(runs["mahalanobis"], tmp_path, "second")
    ok("threshold", second, "--rule", "value", "--value", "1", "-q")  # another run: every window flagged
    other = runs["pca"]  # another detector: refused
    current = tmp_path / "current"
    current.symlink_to(first)
    grow, state, out = tmp_path / "grow.csv", tmp_path / "score.state", tmp_path / "scores.csv"
    append(grow, lines[:201])

    def swap(target):
        def step(source):
            (tmp_path / "next").symlink_to(target)
            os.replace(tmp_path / "next", current)
        return step

    def run_of_state():
        return json.loads(state.read_text())["run"]["path"]

    seen = []
    steps = [swap(other), lambda s: (seen.append(run_of_state()), append(grow, lines[201:251])),
             swap(second), lambda s: (seen.append(run_of_state()), append(grow, lines[251:301]))]
    source = Scripted(str(grow), steps, time.time())
    follow(current, str(grow), out, state, source=source, settings=FollowOptions(poll=0.001))
    assert seen == [str(first), str(second)]  # the pca run refused; the second adopted at once
    scores = pd.read_csv(out)
    assert len(scores) == len(batch_output(first, lines[:301], tmp_path).splitlines()) - 1
    assert (scores.flag.iloc[-50:] == 1).all() and scores.flag.iloc[:-50].mean() < 0.5


def test_a_run_directory_replaced_by_renames_is_loaded_again(runs, lines, tmp_path):
    run_dir = copy_run(runs["mahalanobis"], tmp_path, "run")
    retrained = copy_run(runs["mahalanobis"], tmp_path, "run-next")
    ok("threshold", retrained, "--rule", "value", "--value", "1", "-q")
    grow, state, out = tmp_path / "grow.csv", tmp_path / "score.state", tmp_path / "scores.csv"
    append(grow, lines[:201])

    def nightly(source):  # examples/Makefile's swap
        os.rename(run_dir, tmp_path / "run-previous")
        os.rename(retrained, run_dir)

    fingerprints = []
    steps = [lambda s: fingerprints.append(json.loads(state.read_text())["run"]["fingerprint"]), nightly,
             lambda s: fingerprints.append(json.loads(state.read_text())["run"]["fingerprint"])]
    follow(run_dir, str(grow), out, state, source=Scripted(str(grow), steps, time.time()),
           settings=FollowOptions(poll=0.001))
    assert fingerprints[0] != fingerprints[1]
    assert json.loads(state.read_text())["run"]["path"] == str(run_dir)


@pytest.mark.parametrize("args, fragment", [
    (("--out-dir", "d"), "--follow reads one INPUT"),
    (("--out", "s.csv"), "--follow keeps its place in --state"),
    (("--out", "s.csv", "--state", "st", "--fail-on-alert"), "--follow does not end"),
    (("--out", "s.csv", "--state", "st", "--plot", "p.png"), "--plot draws a figure once"),
])
def test_follow_refuses_what_it_cannot_do(runs, tmp_path, args, fragment):
    given = tmp_path / "in.csv"
    given.write_text("time,x1\n")
    in_tmp = [a if a.startswith("--") else tmp_path / a for a in args]
    fails(2, "score", runs["mahalanobis"], given, "--follow", *in_tmp, fragment=fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # nothing written


def test_follow_refuses_a_compressed_file_and_a_glob(runs, tmp_path):
    for given, fragment in ((tmp_path / "day.csv.gz", "cannot be followed"), (tmp_path / "*.csv", "not a glob")):
        fails(2, "score", runs["mahalanobis"], given, "--follow", "--state", tmp_path / "st", "--out",
              tmp_path / "s.csv", fragment=fragment)


def test_the_example_unit_restarts_a_follower_by_absolute_path():
    unit = (ROOT / "examples" / "lstm-rare-event-follow.service").read_text()
    start = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(start) == 1 and "Restart=always" in unit.splitlines()
    assert start[0].startswith("ExecStart=/srv/paper/.venv/bin/lstm-rare-event score ")
    assert all(option in start[0] for option in ("--follow", "--state", "--out", "%%Y-%%m-%%d.csv"))
    assert "score --follow" in (ROOT / "README.md").read_text()

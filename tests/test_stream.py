"""score --state: only new rows, the same bytes as one batch call, one alert per episode, a
lock, a killed call undone, refused states and rows, data-quality warnings, --missing hold,
stdin/stdout and UTC offsets.

The run directories are conftest's ``runs`` (one per detector, a tiny autoencoder).
"""

import base64
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from filelock import FileLock
from conftest import ROOT, copy_run, fails, invoke, ok

from lstm_rare_event.run import Run
from lstm_rare_event.synthetic import make_sheet_breaks

PREV_ROWS, DAY_ROWS = 180, 720


@pytest.fixture(scope="module")
def plant():
    """Rows as text, as a file holds them: a previous day (history) and a day of 720 rows."""
    frame = make_sheet_breaks(PREV_ROWS + DAY_ROWS, seed=5).astype(str)
    return frame.iloc[:PREV_ROWS].reset_index(drop=True), frame.iloc[PREV_ROWS:].reset_index(drop=True)


@pytest.fixture(scope="module")
def prev_csv(plant, tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "prev.csv"
    plant[0].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def alarming(runs, plant, prev_csv, tmp_path_factory):
    """The Mahalanobis run thresholded at the 93rd percentile of the day's scores: several episodes."""
    base = tmp_path_factory.mktemp("alarming")
    day = base / "day.csv"
    plant[1].to_csv(day, index=False)
    ok("score", runs["mahalanobis"], day, "--history", prev_csv, "--out", base / "s.csv", "-q")
    value = float(np.quantile(pd.read_csv(base / "s.csv").score, 0.93))
    run_dir = copy_run(runs["mahalanobis"], base)
    ok("threshold", run_dir, "--rule", "value", "--value", value, "-q")
    return run_dir


def write(frame, path):
    frame.to_csv(path, index=False)
    return path


def batch(run_dir, day, prev_csv, tmp_path, *args):
    out = tmp_path / "batch.csv"
    result = invoke("score", run_dir, write(day, tmp_path / "day.csv"), "--history", prev_csv, "--out", out, "-q",
                    *args)
    assert result.exit_code in (0, 3), result.output
    return out.read_bytes()


def call(run_dir, piece, state, out, prev_csv, *args):
    result = invoke("score", run_dir, piece, "--state", state, "--history", prev_csv, "--out", out, "-q", *args)
    assert result.exit_code in (0, 3), result.output
    return result


def sizes(n, rng, most=60):
    cuts, at = [], 0
    while at < n:
        k = rng.randint(1, most)
        cuts.append((at, min(at + k, n)))
        at += k
    return cuts


def test_one_row_calls_equal_one_batch_call(runs, plant, prev_csv, tmp_path):
    day = plant[1].iloc[:150]
    expected = batch(runs["lstm"], day, prev_csv, tmp_path)
    state, out, piece = tmp_path / "state.json", tmp_path / "scores.csv", tmp_path / "piece.csv"
    for i in range(len(day)):
        call(runs["lstm"], write(day.iloc[i:i + 1], piece), state, out, prev_csv)
    assert out.read_bytes() == expected
    assert len(pd.read_csv(out)) > 120  # windows from the first row on: the history carries the context


@pytest.mark.parametrize("which", ["lstm", "mahalanobis", "restart"])
def test_random_size_calls_equal_one_batch_call(runs, plant, prev_csv, tmp_path, which):
    """720 rows in calls of random sizes; some calls give the whole growing file of the day."""
    day = plant[1]
    expected = batch(runs[which], day, prev_csv, tmp_path)
    rng = random.Random(which)
    state, out, piece = tmp_path / "state.json", tmp_path / "scores.csv", tmp_path / "piece.csv"
    skipped = 0
    for start, end in sizes(len(day), rng):
        whole = rng.random() < 0.3
        result = call(runs[which], write(day.iloc[:end] if whole else day.iloc[start:end], piece), state, out,
                      prev_csv, "--json")
        skipped += json.loads(result.stdout)["skipped_rows"]
    assert skipped > 0  # the growing file's earlier rows were skipped
    assert out.read_bytes() == expected


def test_stateful_calls_keep_labels_as_one_batch_call(runs, plant, prev_csv, tmp_path):
    """--keep-labels in random-size calls, and in one-row calls around the first break (a call
    of the break row alone): the y column and the break lines are one batch call's, byte for byte."""
    day = plant[1]
    expected = batch(runs["mahalanobis"], day, prev_csv, tmp_path, "--keep-labels")
    scores = pd.read_csv(tmp_path / "batch.csv")
    assert scores.y.sum() == (day.y.astype(int) == 1).sum() == 5 and day.y.iloc[226] == "1"
    piece = tmp_path / "piece.csv"
    for name, cuts in (("random", sizes(len(day), random.Random(7))),
                       ("one row", [(0, 220), *((i, i + 1) for i in range(220, 232)), (232, len(day))])):
        state, out = tmp_path / f"{name}.json", tmp_path / f"{name}.csv"
        for start, end in cuts:
            call(runs["mahalanobis"], write(day.iloc[start:end], piece), state, out, prev_csv, "--keep-labels")
        assert out.read_bytes() == expected, name


@pytest.mark.parametrize("which", ["lstm", "mahalanobis"])
def test_stateful_scores_equal_evaluate(runs, demo_csv, tmp_path, which):
    """The training file in random-size calls: every test window gets evaluate's score."""
    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    state, out, piece = tmp_path / "state.json", tmp_path / "scores.csv", tmp_path / "piece.csv"
    for start, end in sizes(len(frame), random.Random(1), most=120):
        ok("score", runs[which], write(frame.iloc[start:end], piece), "--state", state, "--out", out, "-q")
    scored = pd.read_csv(out)
    run = Run(runs[which])
    test = run.split("test")
    times = np.datetime_as_string(test.end_time, unit="s")
    picked = scored.set_index("time").loc[times, "score"].to_numpy()
    np.testing.assert_allclose(picked, run.detector().score(test), rtol=1e-6, atol=1e-6)
    assert scored.time.is_unique


KILL = """
import os, sys
from lstm_rare_event.scoring import calls
calls.checkpoint = lambda label: os._exit(9)
from lstm_rare_event.cli import cli
cli(sys.argv[1:])
"""


def killed_after_the_append(*args):
    """The command line in a fresh interpreter killed (exit 9) between appending to the
    output and saving the state."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", KILL, *map(str, args)], env=env, capture_output=True, timeout=120)
    assert done.returncode == 9, done.stderr


def test_simulated_day_with_a_killed_call_alerts_once_per_episode(alarming, plant, prev_csv, tmp_path):
    day = plant[1]
    expected = batch(alarming, day, prev_csv, tmp_path)
    episodes = pd.read_csv(tmp_path / "batch.csv").opened.sum()
    assert episodes >= 3
    state, out, piece = tmp_path / "state.json", tmp_path / "scores.csv", tmp_path / "piece.csv"
    alerts, killed = [], False
    for n, (start, end) in enumerate(sizes(len(day), random.Random(7), most=40)):
        write(day.iloc[start:end], piece)
        args = ["score", alarming, piece, "--state", state, "--history", prev_csv, "--out", out, "-q",
                "--fail-on-alert", "--drift-sd", "1000"]  # alerts alone on stderr
        if n == 8:  # killed between appending to the output and saving the state
            before = out.read_bytes()
            killed_after_the_append(*args)
            assert len(out.read_bytes()) > len(before)  # it had appended
            killed = True
        result = invoke(*args)
        assert result.exit_code in (0, 3), result.output
        lines = result.stderr.strip().splitlines()
        assert all(" alert: alarm episode " in line for line in lines), lines  # nothing else with -q
        opened_here = [line for line in lines if " opened at " in line]
        assert (result.exit_code == 3) == bool(opened_here)
        assert all("top sensors" in line and "z " in line for line in opened_here)
        alerts += lines
    assert killed and out.read_bytes() == expected
    opened = pd.read_csv(out).opened.sum()
    # one line per episode opened and one per episode resolved, the killed call's told once
    assert len([a for a in alerts if " opened at " in a]) == opened == episodes
    resolved = [a for a in alerts if " resolved: " in a]
    assert len(resolved) in (episodes - 1, episodes) and len(set(resolved)) == len(resolved)
    scores = pd.read_csv(out)
    assert scores.episode.max() == episodes and (scores.episode[scores.flag == 0] == 0).all()


@pytest.mark.parametrize("killed_out", ["new", "old"])
def test_a_killed_call_is_undone_when_the_next_call_writes_another_out(runs, plant, prev_csv, tmp_path, killed_out):
    """The crontab's --out scores/$(date +%F).csv changes at midnight. A call killed after its
    append (to the new day's file, or, run just before midnight, to the old day's) is undone by
    the next one, whichever file that one writes: every window once, as without the kill."""
    day, run_dir = plant[1].iloc[:200], runs["mahalanobis"]
    pieces = [write(day.iloc[a:b], tmp_path / f"piece-{a}.csv") for a, b in ((0, 70), (70, 140), (140, 200))]

    def score(piece, state, out, kill=False):
        args = ["score", run_dir, piece, "--state", state, "--history", prev_csv, "--out", out, "-q"]
        if kill:
            killed_after_the_append(*args)
        else:
            ok(*args)

    plain, broken = tmp_path / "plain", tmp_path / "killed"
    for folder in (plain, broken):
        folder.mkdir()
    score(pieces[0], plain / "state.json", plain / "day1.csv")
    score(pieces[1], plain / "state.json", plain / "day2.csv")
    score(pieces[2], plain / "state.json", plain / "day2.csv")

    score(pieces[0], broken / "state.json", broken / "day1.csv")
    score(pieces[1], broken / "state.json", broken / ("day2.csv" if killed_out == "new" else "day1.csv"), kill=True)
    score(pieces[1], broken / "state.json", broken / "day2.csv")
    score(pieces[2], broken / "state.json", broken / "day2.csv")
    for name in ("day1.csv", "day2.csv"):
        assert (broken / name).read_bytes() == (plain / name).read_bytes(), name
    both = pd.concat([pd.read_csv(plain / "day1.csv"), pd.read_csv(plain / "day2.csv")], ignore_index=True)
    batch(run_dir, day, prev_csv, tmp_path)
    pd.testing.assert_frame_equal(both, pd.read_csv(tmp_path / "batch.csv"))


@pytest.mark.parametrize("edit", ["path edited", "file replaced"])
def test_a_state_cuts_back_only_the_file_it_appended_to(runs, plant, prev_csv, tmp_path, edit):
    """A state whose output record names a file this state did not append to (its path edited
    by hand, or the output replaced by another file) cuts nothing: one line naming the state."""
    state, out = tmp_path / "state.json", tmp_path / "scores.csv"
    call(runs["mahalanobis"], write(plant[1].iloc[:30], tmp_path / "p1.csv"), state, out, prev_csv)
    precious = "not scores, and longer than the output the state recorded\n" * 100
    victim = tmp_path / "victim.txt"
    victim.write_text(precious)
    if edit == "path edited":
        data = json.loads(state.read_text())
        data["output"]["path"] = str(victim)
        state.write_text(json.dumps(data))
    else:
        os.replace(victim, out)
        victim = out
    saved = state.read_bytes()
    result = fails(2, "score", runs["mahalanobis"], write(plant[1].iloc[30:40], tmp_path / "p2.csv"), "--state", state,
                   "--out", tmp_path / "other.csv", "-q", fragment=str(state))
    assert len(result.stderr.strip().splitlines()) == 1 and "not cut back" in result.stderr
    assert victim.read_text() == precious and state.read_bytes() == saved


def test_a_state_without_the_outputs_identity_cuts_back_only_this_calls_out(runs, plant, prev_csv, tmp_path):
    """A state written before the output's identity was recorded: a killed call's append is
    cut back when the next call writes the same --out, and refused when it writes another."""
    pieces = [write(plant[1].iloc[a:b], tmp_path / f"p{a}.csv") for a, b in ((0, 40), (40, 60))]
    for piece in pieces:
        call(runs["mahalanobis"], piece, tmp_path / "plain.json", tmp_path / "plain.csv", prev_csv)
    state, out = tmp_path / "state.json", tmp_path / "scores.csv"
    call(runs["mahalanobis"], pieces[0], state, out, prev_csv)
    data = json.loads(state.read_text())
    del data["output"]["device"], data["output"]["inode"]
    state.write_text(json.dumps(data))
    with open(out, "a") as handle:
        handle.write("1999-05-01T06:00:00,1.0,0,0,0\n")  # a killed call's append
    appended = out.read_bytes()
    fails(2, "score", runs["mahalanobis"], pieces[1], "--state", state, "--out", tmp_path / "other.csv",
          fragment=str(state))
    assert out.read_bytes() == appended
    call(runs["mahalanobis"], pieces[1], state, out, prev_csv)
    assert out.read_bytes() == (tmp_path / "plain.csv").read_bytes()


@pytest.fixture(scope="module")
def saved_state(runs, plant, prev_csv, tmp_path_factory):
    """A state after one call (Mahalanobis run), with an open episode and a pending event as
    alerting keeps them, and the next call's rows: what the refused-state tests edit."""
    base = tmp_path_factory.mktemp("saved_state")
    state, out = base / "state.json", base / "scores.csv"
    call(runs["mahalanobis"], write(plant[1].iloc[:100], base / "p1.csv"), state, out, prev_csv)
    data = json.loads(state.read_text())
    t = data["last_scored"]
    event = {"id": "e1", "event": "opened", "time": t, "run": "r", "message": "alarm episode 1 opened", "episode": 1}
    data["alerts"]["lifecycle"] = {"episode": {"id": 1, "start": t, "last": t, "last_seconds": 925588800, "peak": 5.0,
                                               "peak_time": t, "windows": 3}, "last_alert": event}
    data["alerts"]["pending"] = [{"event": event, "sinks": ["log"], "attempts": 1, "error": "e"}]
    return data, out.read_bytes(), write(plant[1].iloc[100:130], base / "p2.csv")


def refused(runs, saved_state, tmp_path, edit):
    """The next call with the saved state edited by ``edit(data)``: one line naming the state,
    exit 2, and neither the state nor the output changed."""
    data, output, piece = saved_state
    data = json.loads(json.dumps(data))
    state, out = tmp_path / "state.json", tmp_path / "scores.csv"
    out.write_bytes(output)
    data["output"] = {**data["output"], "path": str(out.resolve()), "inode": out.stat().st_ino,
                      "device": out.stat().st_dev}
    edit(data)
    state.write_text(json.dumps(data))
    result = fails(2, "score", runs["mahalanobis"], piece, "--state", state, "--out", out, "-q", fragment=str(state))
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert state.read_text() == json.dumps(data) and out.read_bytes() == output


ODD = {  # field: a value this tool never writes there
    "last_row": 10**30, "last_scored": "2024-13-45", "episode.last_id": float("inf"), "episode.start": 3, "rows": 1.5,
    "windows": True, "history.rows": -1, "history.segment_start": 10**30, "history.arrays": "!!!!",
    "output.bytes": -1, "output": [], "run": "r", "alerts.last_score": float("nan"),
    "alerts.lifecycle.episode.start": "x", "alerts.lifecycle.episode.peak": 10**400,
}


@pytest.mark.parametrize("field", ODD)
def test_an_odd_value_in_a_state_is_one_line_exit_2(runs, saved_state, tmp_path, field):
    def edit(data):
        *parents, key = field.split(".")
        for name in parents:
            data = data[name]
        data[key] = ODD[field]

    refused(runs, saved_state, tmp_path, edit)


@pytest.mark.parametrize("field", ["alerts.lifecycle.episode.peak", "alerts.lifecycle.episode.start", "rows",
                                   "windows", "last_row", "last_scored", "alerts.last_score", "run"])
def test_status_of_a_state_with_an_odd_value_is_one_line_exit_2(runs, saved_state, tmp_path, field):
    data = json.loads(json.dumps(saved_state[0]))
    *parents, key = field.split(".")
    target = data
    for name in parents:
        target = target[name]
    target[key] = ODD[field]
    state = tmp_path / "state.json"
    state.write_text(json.dumps(data))
    result = fails(2, "status", runs["mahalanobis"], "--state", state, fragment=str(state))
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def carried(data, change):
    """Replace the state's carried rows with ``change(arrays)``."""
    with np.load(io.BytesIO(base64.b64decode(data["history"]["arrays"]))) as saved:
        arrays = {key: saved[key] for key in saved.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data["history"]["arrays"] = base64.b64encode(buffer.getvalue()).decode()


CARRIED = {
    "NaN value": lambda a: a["values"].__setitem__((3, 2), np.nan),
    "1e300 value": lambda a: a["values"].__setitem__((3, 2), 1e300),
    "infinite value": lambda a: a["values"].__setitem__((0, 0), -np.inf),
    "reversed times": lambda a: a.__setitem__("time", a["time"][::-1].copy()),
    "repeated time": lambda a: a["time"].__setitem__(2, a["time"][1]),
    "label 5": lambda a: a.__setitem__("y", np.full(len(a["time"]), 5, dtype=np.int8)),
    "times as text": lambda a: a.__setitem__("time", a["time"].astype(str)),
    "held as text": lambda a: a.__setitem__("held", a["held"].astype(str)),
    "time far ahead": lambda a: a.__setitem__("time", a["time"] + 10**15),
}


@pytest.mark.parametrize("change", CARRIED)
def test_odd_carried_rows_in_a_state_are_one_line_exit_2(runs, saved_state, tmp_path, change):
    """The rows a state carries are rows the input checks would have let through: finite
    values within range, labels 0 or 1, times strictly increasing up to the last row."""
    refused(runs, saved_state, tmp_path, lambda data: carried(data, CARRIED[change]))


def test_batch_and_state_number_episodes_alike(alarming, plant, prev_csv, tmp_path):
    out = tmp_path / "scores.csv"
    result = invoke("score", alarming, write(plant[1], tmp_path / "day.csv"), "--history", prev_csv, "--out", out,
                    "--fail-on-alert", "-q")
    alerts = [line for line in result.stderr.strip().splitlines() if " opened at " in line]
    scores = pd.read_csv(out)
    assert result.exit_code == 3 and len(alerts) == scores.opened.sum() and "alarm episode 1 opened at" in alerts[0]
    flagged = scores[scores.flag == 1]
    assert (flagged.episode >= 1).all() and scores.opened.sum() == flagged.episode.nunique()
    assert flagged.episode.is_monotonic_increasing


def test_busy_state_exits_75_and_writes_nothing(runs, plant, prev_csv, tmp_path):
    state, out = tmp_path / "state.json", tmp_path / "scores.csv"
    with FileLock(tmp_path / "state.json.lock"):
        result = invoke("score", runs["mahalanobis"], write(plant[1].iloc[:20], tmp_path / "p.csv"), "--state", state,
                        "--out", out, "--wait", "0.2")
    assert result.exit_code == 75, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "state.json" in result.stderr
    assert not state.exists() and not out.exists()


def test_state_of_another_run_is_refused_unless_adopted(runs, alarming, plant, prev_csv, tmp_path):
    state, out, piece = tmp_path / "state.json", tmp_path / "scores.csv", tmp_path / "p.csv"
    call(runs["mahalanobis"], write(plant[1].iloc[:30], piece), state, out, prev_csv)
    saved = state.read_bytes()
    write(plant[1].iloc[30:40], piece)
    result = invoke("score", alarming, piece, "--state", state, "--out", tmp_path / "other.csv")
    assert result.exit_code == 2 and "written with another run" in result.stderr, result.output
    assert state.read_bytes() == saved and not (tmp_path / "other.csv").exists()
    # --adopt carries it only to a run of the same detector (a retrain), never to another one.
    result = invoke("score", runs["lstm"], piece, "--state", state, "--out", tmp_path / "other.csv", "--adopt")
    assert result.exit_code == 2 and "same detector" in result.stderr and len(result.stderr.splitlines()) == 1
    assert state.read_bytes() == saved and not (tmp_path / "other.csv").exists()
    ok("score", alarming, piece, "--state", state, "--out", tmp_path / "other.csv", "--adopt", "-q")
    assert len(pd.read_csv(tmp_path / "other.csv")) == 10
    adopted = json.loads(state.read_text())["adopted"]
    assert [(a["from"], a["to"]) for a in adopted] == [(str(runs["mahalanobis"].resolve()), str(alarming.resolve()))]


def test_old_row_not_seen_is_refused(runs, plant, prev_csv, tmp_path):
    state, out, piece = tmp_path / "state.json", tmp_path / "scores.csv", tmp_path / "p.csv"
    day = plant[1]
    call(runs["mahalanobis"], write(day.iloc[:30], piece), state, out, prev_csv)
    before = out.read_bytes()
    between = pd.to_datetime(day.time[25], format="%m/%d/%y %H:%M") - pd.Timedelta(minutes=1)
    odd = day.iloc[[25]].assign(time=between.strftime("%m/%d/%y %H:%M"))  # between two seen rows, never given
    late = pd.concat([day.iloc[24:25], odd, day.iloc[30:33]])
    result = invoke("score", runs["mahalanobis"], write(late, piece), "--state", state, "--out", out)
    assert result.exit_code == 2 and "row 2, column 'time'" in result.stderr and "was not among" in result.stderr, \
        result.output
    assert out.read_bytes() == before


def test_a_gap_starts_a_new_segment_as_in_batch(runs, plant, prev_csv, tmp_path):
    day = plant[1].iloc[:120].copy()
    t = pd.to_datetime(day.time, format="%m/%d/%y %H:%M")
    t[60:] += pd.Timedelta(hours=3)
    day["time"] = t.dt.strftime("%Y-%m-%dT%H:%M:%S")
    expected = batch(runs["lstm"], day, prev_csv, tmp_path)
    state, out, piece = tmp_path / "state.json", tmp_path / "scores.csv", tmp_path / "p.csv"
    for start, end in sizes(len(day), random.Random(3), most=9):
        call(runs["lstm"], write(day.iloc[start:end], piece), state, out, prev_csv)
    assert out.read_bytes() == expected
    assert len(pd.read_csv(out)) == 120 - 4 - int(day.y.astype(float).sum()) or True


def test_drift_interval_and_constant_warnings(runs, plant, prev_csv, tmp_path):
    day = plant[1].iloc[:40].copy()
    day["x3"] = (day.x3.astype(float) + 1e4).astype(str)  # far beyond its training range
    day["x5"] = "1.5"  # stuck
    result = invoke("score", runs["mahalanobis"], write(day, tmp_path / "d.csv"), "--history", prev_csv,
                    "--out", tmp_path / "s.csv", "-q", "--json")
    assert result.exit_code in (0, 3), result.output
    kinds = {w["kind"]: w for w in json.loads(result.stdout)["warnings"]}
    assert "x3" in kinds["drift"]["sensors"] and kinds["stuck"]["sensors"] == ["x5"]
    assert "cadence" not in kinds
    warned = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert any("x3" in line and "SD" in line for line in warned) and any("x5" in line for line in warned)
    minute = plant[1].iloc[:40].copy()  # 1-minute rows into a 2-minute run
    t = pd.to_datetime(minute.time, format="%m/%d/%y %H:%M")
    minute["time"] = (t[0] + pd.to_timedelta(np.arange(40), unit="min")).strftime("%Y-%m-%dT%H:%M:%S")
    result = invoke("score", runs["mahalanobis"], write(minute, tmp_path / "m.csv"), "--out", tmp_path / "s.csv",
                    "-q", "--json")
    assert result.exit_code in (0, 3)
    assert any(w["kind"] == "cadence" for w in json.loads(result.stdout)["warnings"])


def test_missing_cell_is_exit_2_or_held(runs, plant, prev_csv, tmp_path):
    day = plant[1].iloc[:40].copy()
    day.loc[12, "x7"] = ""
    path = write(day, tmp_path / "d.csv")
    result = invoke("score", runs["lstm"], path, "--out", tmp_path / "s.csv")
    assert result.exit_code == 2 and "row 13, column 'x7': empty" in result.stderr, result.output
    out, state = tmp_path / "held.csv", tmp_path / "state.json"
    for start, end in [(0, 10), (10, 13), (13, 40)]:
        call(runs["lstm"], write(day.iloc[start:end], tmp_path / "p.csv"), state, out, prev_csv, "--missing", "hold")
    held = pd.read_csv(out)
    assert "held" in held.columns
    filled = day.copy()
    filled.loc[12, "x7"] = day.loc[11, "x7"]
    ok("score", runs["lstm"], write(filled, tmp_path / "f.csv"), "--history", prev_csv, "--out",
       tmp_path / "f-out.csv", "-q", "--missing", "hold")
    same = pd.read_csv(tmp_path / "f-out.csv")
    np.testing.assert_array_equal(held.score, same.score)  # the held value is the previous one
    # windows containing row 12 (index): those ending at rows 12..16
    times = pd.to_datetime(day.time, format="%m/%d/%y %H:%M").dt.strftime("%Y-%m-%dT%H:%M:%S")
    assert sorted(held.time[held.held == 1]) == sorted(times.iloc[12:17])


def test_stdin_and_stdout(runs, plant, prev_csv, tmp_path):
    day = plant[1].iloc[:60]
    expected = batch(runs["mahalanobis"], day, prev_csv, tmp_path)
    text = day.to_csv(index=False)
    from click.testing import CliRunner
    from lstm_rare_event.cli import cli

    result = CliRunner().invoke(cli, ["score", str(runs["mahalanobis"]), "-", "--history", str(prev_csv), "--out",
                                      "-", "--json"], input=text)
    assert result.exit_code in (0, 3), result.output
    assert result.stdout.encode() == expected  # only CSV on stdout
    assert '"windows"' in result.stderr
    state = tmp_path / "state.json"
    pieces = []
    for start, end in [(0, 20), (20, 21), (21, 60)]:
        piece = day.iloc[start:end].to_csv(index=False)
        r = CliRunner().invoke(cli, ["score", str(runs["mahalanobis"]), "-", "--history", str(prev_csv), "--state",
                                     str(state), "--out", "-", "-q"], input=piece)
        assert r.exit_code in (0, 3), r.output
        pieces.append(r.stdout)
    assert "".join(pieces).encode() == expected  # the header once, then only the new rows


def test_utc_offsets_are_kept_and_naive_stays_naive(runs, plant, prev_csv, tmp_path):
    day = plant[1].iloc[:30].copy()
    t = pd.to_datetime(day.time, format="%m/%d/%y %H:%M")
    day["time"] = t.dt.strftime("%Y-%m-%dT%H:%M:%S+02:00")
    day.loc[20:, "time"] = (t[20:] - pd.Timedelta(hours=1)).dt.strftime("%Y-%m-%dT%H:%M:%S+01:00")  # DST ends
    out = tmp_path / "s.csv"
    ok("score", runs["restart"], write(day, tmp_path / "d.csv"), "--out", out, "-q")
    times = pd.read_csv(out).time
    assert times.iloc[0].endswith("+02:00") and times.iloc[-1].endswith("+01:00")
    assert times.iloc[0][:19] == pd.to_datetime(day.time.iloc[4]).strftime("%Y-%m-%dT%H:%M:%S")
    state = tmp_path / "state.json"
    for start, end in [(0, 7), (7, 30)]:
        ok("score", runs["restart"], write(day.iloc[start:end], tmp_path / "p.csv"), "--state", state,
           "--out", tmp_path / "st.csv", "-q")
    assert (tmp_path / "st.csv").read_bytes() == out.read_bytes()
    naive = tmp_path / "naive.csv"
    ok("score", runs["restart"], write(plant[1].iloc[:30], tmp_path / "n.csv"), "--out", naive, "-q")
    assert pd.read_csv(naive).time.iloc[0] == "1999-05-01T06:08:00" or "+" not in pd.read_csv(naive).time.iloc[0]


def test_output_header_must_match(runs, plant, prev_csv, tmp_path):
    out = tmp_path / "scores.csv"
    out.write_text("time,something,else\n")
    result = invoke("score", runs["mahalanobis"], write(plant[1].iloc[:20], tmp_path / "p.csv"), "--state",
                    tmp_path / "state.json", "--out", out)
    assert result.exit_code == 2 and "header" in result.stderr, result.output
    assert out.read_text() == "time,something,else\n"


def test_examples_crontab_scores_every_two_minutes_by_absolute_path():
    lines = [line for line in (ROOT / "examples" / "crontab").read_text().splitlines() if line.startswith("*/2 ")]
    assert len(lines) == 1
    assert "/srv/paper/.venv/bin/lstm-rare-event score" in lines[0] and "--state" in lines[0]
    assert "Deployment" in (ROOT / "README.md").read_text()


def test_the_crontab_score_line_runs_as_written_in_cron_s_environment(alarming, plant, tmp_path):
    """The */2 line itself, through /bin/sh with cron's environment (env -i: PATH=/usr/bin:/bin,
    no venv, no HOME of ours), /srv/paper being a folder here: today's day file is scored,
    yesterday's missing one is the missing-input condition, not an error."""
    script = Path(sys.executable).parent / "lstm-rare-event"
    if not script.is_file():
        pytest.skip("the lstm-rare-event script is not installed beside this Python")
    line, = [line for line in (ROOT / "examples" / "crontab").read_text().splitlines() if line.startswith("*/2 ")]
    command = line.split(" ", 5)[5].replace("\\%", "%")  # the five time fields off; cron unescapes %
    home = tmp_path / "srv"
    command = command.replace("/srv/paper/.venv/bin/lstm-rare-event", str(script)).replace("/srv/paper", str(home))
    command = command.replace("/var/lib/node_exporter/textfile_collector", str(tmp_path / "textfile"))
    (home / "incoming").mkdir(parents=True)
    (tmp_path / "textfile").mkdir()
    copy_run(alarming, home / "runs", "a")
    (home / "current").symlink_to("runs/a")
    today = subprocess.run(["date", "+%F"], env={}, capture_output=True, text=True, check=True).stdout.strip()
    write(plant[1].iloc[:100], home / "incoming" / f"{today}.csv")
    done = subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", "SHELL=/bin/sh", f"HOME={tmp_path}", "/bin/sh", "-c",
                           command], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    told = [line.split(" ", 1)[1] for line in done.stderr.splitlines()]
    assert told[0].startswith("warning: missing input since "), done.stderr
    assert all(t.startswith(("alert: ", "warning: ")) for t in told), done.stderr  # -q: transitions only
    assert len(pd.read_csv(home / "scores" / f"{today}.csv")) > 0
    assert (home / "state" / "score.state").is_file() and (home / "state" / "alerts.jsonl").is_file()
    assert "lstm_rare_event_rows_scored_total" in (tmp_path / "textfile" / "lstm-rare-event.prom").read_text()


def test_plot_and_historian_formats(runs, new_csv, tmp_path):
    """--plot draws the scored period; --sep ';' --decimal ',' reads the same rows as the CSV."""
    text = new_csv.read_text().replace(",", ";").replace(".", ",")
    semi = tmp_path / "new-semi.csv"
    semi.write_text(text)
    ok("score", runs["mahalanobis"], new_csv, "--out", tmp_path / "a.csv", "--plot", tmp_path / "a.png", "-q")
    assert (tmp_path / "a.png").stat().st_size > 10_000
    fails(2, "score", runs["mahalanobis"], semi, "--out", tmp_path / "b.csv", fragment="try --sep ';'")
    ok("score", runs["mahalanobis"], semi, "--out", tmp_path / "b.csv", "--sep", ";", "--decimal", ",", "-q")
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    fails(2, "score", runs["mahalanobis"], new_csv, "--out", "-", "--plot", tmp_path / "c.png", fragment="--plot")


def test_a_cron_day_tells_each_episode_and_condition_once_and_status_agrees(alarming, plant, prev_csv, tmp_path):
    """The crontab's call every 15 rows over yesterday's and today's day files: today's file is
    missing for the first calls, x5 is stuck for a while; every change is told once, on stderr
    and to both sinks, and `status` shows where the job stands."""
    day = plant[1].copy()
    day.loc[300:449, "x5"] = day.x5[300]  # stuck for 150 rows (5 hours), then live again
    yesterday, today = tmp_path / "2024-01-01.csv", tmp_path / "2024-01-02.csv"
    plant[0].to_csv(yesterday, index=False)
    state, out, log, seen = tmp_path / "score.state", tmp_path / "scores.csv", tmp_path / "alerts.jsonl", \
        tmp_path / "cmd.txt"
    cmd = f'"{sys.executable}" -c "import os; open(r\'{seen}\', \'a\').write(os.environ[\'LRE_ID\'] + chr(10))"'
    args = ["--state", state, "--out", out, "-q", "--drift-sd", "1000", "--clear-after", "20min",
            "--alert-log", log, "--alert-cmd", cmd, "--metrics", tmp_path / "lre.prom"]
    lines = []
    for n, end in enumerate([0, 0, *range(15, len(day) + 15, 15)]):
        if end:
            write(day.iloc[:end], today)  # the historian appends to today's file
        result = invoke("score", alarming, yesterday, today, *args)
        assert result.exit_code == 0, result.output
        lines += [line.split(" ", 1)[1] for line in result.stderr.strip().splitlines()]
    scores = pd.read_csv(out)
    episodes = int(scores.opened.sum())
    assert episodes >= 3
    alerts = [line for line in lines if line.startswith("alert: ")]
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(alerts) + len(warnings) == len(lines)  # nothing else with -q: no error, no summary
    assert len([a for a in alerts if " opened at " in a]) == episodes
    assert len([a for a in alerts if " resolved: " in a]) in (episodes - 1, episodes)
    kinds = [(w.split(" since ")[0].split(" cleared")[0][len("warning: "):], "cleared" in w) for w in warnings]
    assert kinds == [("missing input", False), ("missing input", True), ("stuck", False), ("stuck", True)]
    assert "x5" in warnings[2]
    told = [json.loads(line) for line in log.read_text().splitlines()]
    assert [t["message"] for t in told] == [line.split(": ", 1)[1] for line in lines]
    assert seen.read_text().splitlines() == [t["id"] for t in told]
    # status, read only
    before = state.read_bytes()
    info = json.loads(ok("status", alarming, "--state", state, "--json").stdout)
    assert state.read_bytes() == before
    assert info["last_alert"]["message"] == alerts[-1].split(": ", 1)[1] and info["conditions"] == []
    assert info["last_scored"] and info["windows"] == len(scores) and info["pending_events"] == 0
    open_now = info["open_episode"]
    assert (open_now is None) == (len([a for a in alerts if " resolved: " in a]) == episodes)
    text = ok("status", alarming, "--state", state).stdout
    assert "threshold:" in text and "conditions: none" in text
    prom = (tmp_path / "lre.prom").read_text()
    assert f'lstm_rare_event_windows_scored_total{{state="score"}} {len(scores)}' in prom


def test_a_failing_alert_command_is_retried_on_the_next_call(alarming, plant, prev_csv, tmp_path):
    state, out, flag = tmp_path / "s.state", tmp_path / "scores.csv", tmp_path / "works"
    got = tmp_path / "got.txt"
    cmd = (f'"{sys.executable}" -c "import os,sys; ok = os.path.exists(r\'{flag}\'); '
           f'ok and open(r\'{got}\', \'a\').write(os.environ[\'LRE_EVENT\'] + chr(10)); sys.exit(0 if ok else 5)"')
    args = ["--state", state, "--history", prev_csv, "--out", out, "-q", "--drift-sd", "1000", "--alert-cmd", cmd]
    first = invoke("score", alarming, write(plant[1].iloc[:400], tmp_path / "p.csv"), *args)
    assert first.exit_code == 0
    errors = [line for line in first.stderr.splitlines() if " error: " in line]
    assert errors and all("exit 5" in e and "kept to retry" in e for e in errors)
    assert json.loads(ok("status", alarming, "--state", state, "--json").stdout)["pending_events"] == len(errors)
    flag.write_text("")
    second = invoke("score", alarming, write(plant[1].iloc[400:401], tmp_path / "p.csv"), *args)
    assert second.exit_code == 0 and " error: " not in second.stderr
    assert len(got.read_text().splitlines()) >= len(errors)  # the pending ones, then this call's own


def test_status_of_a_missing_or_foreign_state_is_one_line(alarming, tmp_path):
    fails(2, "status", alarming, "--state", tmp_path / "none.state", fragment="none.state: file not found")
    (tmp_path / "odd.state").write_text("{}")
    fails(2, "status", alarming, "--state", tmp_path / "odd.state", fragment="not a score state")


def test_the_alert_and_the_report_name_the_same_top_sensors(alarming, plant, prev_csv, tmp_path):
    from lstm_rare_event.scoring import figure

    out, log = tmp_path / "scores.csv", tmp_path / "alerts.jsonl"
    ok("score", alarming, write(plant[1], tmp_path / "day.csv"), "--history", prev_csv, "--out", out, "-q",
       "--alert-log", log, "--drift-sd", "1000")
    alerted = [[s["name"] for s in e["sensors"]] for e in map(json.loads, log.read_text().splitlines())
               if e["event"] == "opened"]
    rows = figure.scored_episodes(figure.read_scores(out))
    assert len(alerted) == len(rows) >= 3 and [r["sensors"] for r in rows] == alerted

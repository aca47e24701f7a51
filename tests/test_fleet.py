"""A fleet: score RUN INPUT... --out-dir (the run loaded once, the same bytes as one call per
input, bad inputs reported while the good ones are written), and examples/fleet/Makefile run
with make -j 2 on two tiny machines.

The run directories are conftest's ``runs`` (one per detector, a tiny autoencoder).
"""

import gzip
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, fails, invoke, ok

from lstm_rare_event.scoring.output import output_name
from lstm_rare_event.synthetic import make_sheet_breaks, write_csv


@pytest.fixture(scope="module")
def days(tmp_path_factory, new_csv):
    """Three days of one machine: new_csv, another CSV and a gzipped one."""
    base = tmp_path_factory.mktemp("days")
    first = shutil.copy(new_csv, base / "day-1.csv")
    second = base / "day-2.csv"
    write_csv(make_sheet_breaks(300, seed=3), second)
    third = base / "day-3.csv.gz"
    write_csv(make_sheet_breaks(300, seed=4), base / "plain-3.csv")
    third.write_bytes(gzip.compress((base / "plain-3.csv").read_bytes()))
    return [first, second, third]


def test_output_names():
    assert output_name("a/day-1.csv") == "day-1.scores.csv"
    assert output_name("day.CSV.gz") == "day.scores.csv"
    assert output_name("day.parquet") == "day.scores.csv"
    assert output_name("machine.v2.csv") == "machine.v2.scores.csv"


@pytest.mark.parametrize("detector", ["lstm", "mahalanobis"])
def test_several_inputs_write_the_bytes_of_one_call_each(runs, days, tmp_path, detector):
    run_dir = runs[detector]
    result = ok("score", run_dir, *days, "--out-dir", tmp_path / "many", "--json", "-q")
    summary = json.loads(result.stdout)
    assert [s["input"] for s in summary["inputs"]] == [str(p) for p in days]
    assert summary["failed"] == []
    for day in days:
        single = tmp_path / f"single-{day.name}.csv"
        ok("score", run_dir, day, "--out", single, "-q")
        many = tmp_path / "many" / output_name(day)
        assert many.read_bytes() == single.read_bytes(), day.name
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == sorted(output_name(p) for p in days)


def test_one_line_per_input_and_the_alert_of_any(runs, days, tmp_path):
    result = invoke("score", runs["mahalanobis"], *days, "--out-dir", tmp_path, "--fail-on-alert", "--json")
    summary = json.loads(result.stdout)
    lines = [line for line in result.stderr.splitlines() if "scored" in line]
    assert len(lines) == len(days)
    assert result.exit_code == (3 if summary["episodes_opened"] else 0), result.output
    opened = [s["input"] for s in summary["inputs"] if s["episodes_opened"]]
    assert sorted({e["input"] for e in summary["episodes_opened"]}) == sorted(opened)


def test_a_bad_input_is_named_the_good_ones_are_written(runs, days, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,x1\n2024-01-01 00:00:00,1\n")
    out = tmp_path / "out"
    result = invoke("score", runs["mahalanobis"], days[0], bad, days[1], "--out-dir", out, "--json")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(bad) in errors[0], result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["day-1.scores.csv", "day-2.scores.csv"]
    summary = json.loads(result.stdout)
    assert [f["input"] for f in summary["failed"]] == [str(bad)]


@pytest.mark.parametrize("args, fragment", [
    (("{day}", "--out", "{tmp}/a.csv", "--out-dir", "{tmp}/d"), "mutually exclusive"),
    (("{day}",), "give --out FILE"),
    (("{day}", "{day2}", "--out-dir", "{tmp}/d", "--history", "{day}"), "--history applies to a single INPUT"),
    (("{day}", "{day2}", "--out-dir", "{tmp}/d", "--state", "{tmp}/s.state"), "--state applies to a single INPUT"),
    (("-", "--out-dir", "{tmp}/d"), "stdin"),
])
def test_usage_errors_are_one_line(runs, days, tmp_path, args, fragment):
    values = {"day": days[0], "day2": days[1], "tmp": tmp_path}
    result = fails(2, "score", runs["mahalanobis"], *(a.format(**values) for a in args), fragment=fragment)
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "d").exists() and not (tmp_path / "a.csv").exists()


def test_two_inputs_with_one_name_are_refused(runs, days, tmp_path):
    (tmp_path / "x").mkdir()
    twin = shutil.copy(days[0], tmp_path / "x" / "day-1.csv")
    result = fails(2, "score", runs["mahalanobis"], days[0], twin, "--out-dir", tmp_path / "d",
                   fragment="day-1.scores.csv")
    assert "both write" in result.output
    assert not (tmp_path / "d").exists()


def test_one_input_with_out_dir_takes_state_and_history(runs, days, tmp_path):
    args = ("score", runs["mahalanobis"], days[1], "--history", days[0], "-q")
    ok(*args, "--out", tmp_path / "single.csv")
    ok(*args, "--out-dir", tmp_path / "d", "--state", tmp_path / "s.state")
    assert (tmp_path / "d" / "day-2.scores.csv").read_bytes() == (tmp_path / "single.csv").read_bytes()


# -- examples/fleet/Makefile ---------------------------------------------------------------
@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_fleet_makefile_builds_machines_in_parallel_then_does_nothing(tmp_path):
    for i, name in enumerate(("press", "dryer")):
        write_csv(make_sheet_breaks(600, seed=10 + i), tmp_path / "machines" / f"{name}.csv")
        for day in (1, 2):
            write_csv(make_sheet_breaks(200, seed=20 + 2 * i + day), tmp_path / "incoming" / name / f"d{day}.csv")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    make = ["make", "-f", str(ROOT / "examples" / "fleet" / "Makefile"), f"CLI={sys.executable} -m lstm_rare_event",
            "PREPARE_OPTS=--detrend 12", "TRAIN_OPTS=--detector mahalanobis", "SCORE_OPTS=-q"]

    def run(*args):
        return subprocess.run([*make, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    done = run("-j", "2", "all", "scores")
    assert done.returncode == 0, done.stdout + done.stderr
    scores = [line for line in done.stdout.splitlines() if " score " in line]
    assert len(scores) == 2 and all("--out-dir" in line for line in scores)  # one call per machine
    for name in ("press", "dryer"):
        assert (tmp_path / "runs" / name / "threshold.json").exists()
        assert sorted(p.name for p in (tmp_path / "scores" / name).iterdir()) == ["d1.scores.csv", "d2.scores.csv"]
    again = run("-j", "2", "all", "scores")
    assert again.returncode == 0, again.stderr
    assert "lstm_rare_event" not in again.stdout and "Nothing to be done for 'scores'" in again.stdout, again.stdout
    # A new day: only that day is scored, with one call for its machine; a machine whose run
    # changed and that has no day to score only gets its stamp.
    write_csv(make_sheet_breaks(200, seed=40), tmp_path / "incoming" / "press" / "d3.csv")
    shutil.rmtree(tmp_path / "incoming" / "dryer")
    stamp = tmp_path / "scores" / "dryer.scored"
    run_changed = (tmp_path / "runs" / "dryer" / "threshold.json").stat().st_mtime
    os.utime(stamp, (run_changed - 10,) * 2)  # as if the run had been retrained since
    third = run("-j", "2", "scores")
    assert third.returncode == 0, third.stderr
    calls = [line for line in third.stdout.splitlines() if " score " in line]
    assert len(calls) == 1 and "incoming/press/d3.csv" in calls[0] and "d1.csv" not in calls[0], third.stdout
    assert (tmp_path / "scores" / "press" / "d3.scores.csv").exists()
    assert stamp.stat().st_mtime >= run_changed
    assert "Nothing to be done for 'scores'" in run("scores").stdout

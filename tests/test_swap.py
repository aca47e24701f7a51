"""The nightly swap: `promote RUN --link current` replaces the link by one rename, `score`
follows the link once per call and says which run scored, `--adopt` carries a state only to a
run of the same detector and sensors, and examples/Makefile's nightly target does it all.

Faults are injected at run.swap_checkpoint (between promote's operations) and by wrapping the
link's resolution, never by timing."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, copy_run, fails, invoke, ok, write_days

from lstm_rare_event import run as run_module
from lstm_rare_event.run import Run, promote
from lstm_rare_event.scoring import engine
from lstm_rare_event.steps.score import summary_line
from lstm_rare_event.synthetic import make_sheet_breaks


@pytest.fixture
def deployment(runs, tmp_path):
    """Two runs of one detector with different thresholds, in runs/ as the nightly names them,
    and `current` pointing at the older."""
    old = copy_run(runs["mahalanobis"], tmp_path / "runs", "2024-03-04T013000")
    new = copy_run(runs["mahalanobis"], tmp_path / "runs", "2024-03-05T013000")
    ok("threshold", new, "--target", "4", "-q")
    assert Run(old).threshold().value != Run(new).threshold().value  # so that a mix would show
    link = tmp_path / "current"
    ok("promote", old, "--link", link, "-q")
    return old, new, link


def scored_by(link, new_csv, out, *args) -> dict:
    """The --json summary of a score call through ``link``."""
    result = invoke("score", link, new_csv, "--out", out, "--json", "-q", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_promote_points_the_link_at_the_run_by_a_relative_path(deployment, tmp_path):
    old, new, link = deployment
    assert os.readlink(link) == "runs/2024-03-04T013000"
    done = json.loads(ok("promote", new, "--link", link, "--json", "-q").stdout)
    assert os.readlink(link) == "runs/2024-03-05T013000" and link.resolve() == new.resolve()
    assert done["previous"] == str(old.resolve()) and done["removed"] == [] and done["warning"] is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".current.") and p.name != ".current.lock"] == []


def test_a_score_between_the_steps_of_the_swap_loads_a_whole_run(deployment, new_csv, tmp_path, monkeypatch):
    old, new, link = deployment
    third = copy_run(old, tmp_path / "runs", "2024-03-01T013000")  # older by name: pruned with --keep 2
    seen = {}

    def score_now(label):
        seen[label] = scored_by(link, new_csv, tmp_path / f"{len(seen)}.csv")["run"]

    monkeypatch.setattr(run_module, "swap_checkpoint", score_now)
    promote(new, link, keep=2)
    assert seen == {"link made": str(old.resolve()), "renamed": str(new.resolve()),
                    "removing 2024-03-01T013000": str(new.resolve())}
    assert not third.exists() and old.exists()  # the run just replaced is kept


def test_a_swap_while_score_loads_cannot_mix_two_runs(deployment, new_csv, tmp_path, monkeypatch):
    old, new, link = deployment
    followed = engine.resolve_run

    def swapped_right_after(path):
        resolved = followed(path)
        promote(new, link)  # the nightly's rename lands between the link's resolution and the load
        return resolved

    monkeypatch.setattr(engine, "resolve_run", swapped_right_after)
    state = tmp_path / "s.state"
    summary = scored_by(link, new_csv, tmp_path / "s.csv", "--state", state)
    assert summary_line(summary).endswith(f"-> {tmp_path / 's.csv'} (run {old.resolve()})")
    assert link.resolve() == new.resolve()
    assert summary["run"] == str(old.resolve()) and summary["threshold"] == Run(old).threshold().value
    assert json.loads(state.read_text())["run"]["path"] == str(old.resolve())


def across_the_swap(deployment, new_csv, tmp_path):
    """The first 150 rows scored with a state through the link, the newer run promoted, the rest
    scored with --adopt (refused without it): the two calls' summaries, the state and the output."""
    old, new, link = deployment
    rows = new_csv.read_text().splitlines()
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("\n".join(rows[:151]) + "\n")
    second.write_text("\n".join(rows[:1] + rows[151:]) + "\n")
    state, out = tmp_path / "s.state", tmp_path / "scores.csv"
    before = scored_by(link, first, out, "--state", state)
    ok("promote", new, "--link", link, "-q")
    fails(2, "score", link, second, "--state", state, "--out", out, fragment="pass --adopt")
    after = scored_by(link, second, out, "--state", state, "--adopt")
    return before, after, state, out


def test_stateful_scoring_through_the_link_across_a_swap_adopts_the_state(deployment, new_csv, tmp_path):
    old, new, link = deployment
    before, after, state, out = across_the_swap(deployment, new_csv, tmp_path)
    assert (before["run"], after["run"]) == (str(old.resolve()), str(new.resolve()))
    saved = json.loads(state.read_text())
    assert saved["run"]["path"] == str(new.resolve())
    [adopted] = saved["adopted"]
    assert (adopted["from"], adopted["to"], adopted["after"]) == (str(old.resolve()), str(new.resolve()),
                                                                  before["last_scored"])
    assert (adopted["threshold"], saved["run"]["threshold"]) == (before["threshold"], after["threshold"])
    assert f"adopted: from {old.resolve()}" in ok("status", link, "--state", state).stdout
    # No window lost or scored twice across the swap; scores.csv has the columns it always had.
    whole = invoke("score", old, new_csv, "--out", tmp_path / "whole.csv", "-q")
    assert whole.exit_code == 0
    times = [line.split(",")[0] for line in out.read_text().splitlines()]
    assert times == [line.split(",")[0] for line in (tmp_path / "whole.csv").read_text().splitlines()]


def test_the_figure_draws_each_run_s_threshold_over_the_windows_it_scored(deployment, new_csv, tmp_path):
    from lstm_rare_event.scoring.figure import read_scores, run_thresholds

    link = deployment[2]
    before, after, state, out = across_the_swap(deployment, new_csv, tmp_path)
    scores = read_scores(out)
    limits = run_thresholds(scores, after["threshold"], json.loads(state.read_text())["adopted"])
    old_windows = scores["utc"] <= np.datetime64(before["last_scored"], "s")
    assert old_windows.sum() == before["windows"] and (~old_windows).sum() == after["windows"]
    assert (limits[old_windows] == before["threshold"]).all() and (limits[~old_windows] == after["threshold"]).all()
    # each window's flag is its own run's verdict: the line drawn is the one it was flagged by
    assert (scores["flag"] == (scores["score"] > limits)).all()
    assert run_thresholds(scores, after["threshold"]) == after["threshold"]  # no state: the run's own
    from lstm_rare_event.scoring.figure import plot_scores

    figure = plot_scores(out, tmp_path / "f.png", threshold=after["threshold"],
                         adopted=json.loads(state.read_text())["adopted"])
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("threshold of the run that scored each window") for label in labels), labels
    html = tmp_path / "r.html"
    ok("report", link, "--scores", out, "--state", state, "--out", html, "-q")
    fails(2, "report", link, "--state", state, "--out", html, fragment="--state draws the thresholds of --scores")


def test_adopt_refuses_another_detector_or_other_sensors(runs, new_csv, tmp_path):
    state, out = tmp_path / "s.state", tmp_path / "scores.csv"
    ok("score", runs["mahalanobis"], new_csv, "--state", state, "--out", out, "-q")
    saved = state.read_bytes()
    result = fails(2, "score", runs["pca"], new_csv, "--state", state, "--out", out, "--adopt",
                   fragment="is a pca run; --adopt carries a state only to a run of the same detector")
    assert len(result.stderr.strip().splitlines()) == 1 and state.read_bytes() == saved
    data = json.loads(saved)
    data["run"]["fingerprint"], data["features"] = "another", data["features"][::-1]
    state.write_text(json.dumps(data))
    fails(2, "score", runs["mahalanobis"], new_csv, "--state", state, "--out", out, "--adopt",
          fragment="written for other sensors")


@pytest.mark.parametrize("broken", ["missing", "half-made"])
def test_a_link_to_a_missing_or_half_made_run_names_the_link_and_its_target(runs, new_csv, tmp_path, broken):
    target = tmp_path / "runs" / "2024-03-05T013000"
    if broken == "half-made":
        copy_run(runs["mahalanobis"], tmp_path / "runs", target.name)
        (target / "threshold.json").unlink()
    link = tmp_path / "current"
    link.symlink_to(Path("runs") / target.name)
    for command in (("score", link, new_csv, "--out", tmp_path / "s.csv"),
                    ("status", link, "--state", tmp_path / "s.state")):
        result = invoke(*command)
        assert result.exit_code == 2, result.output
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1 and str(link) in message and target.name in message, message
        assert f"--out {link}" not in message and "promote RUN --link" in message
    assert not (tmp_path / "s.csv").exists()


def test_promote_refuses_what_it_cannot_swap_and_leaves_the_link(deployment, runs, tmp_path, monkeypatch):
    old, new, link = deployment
    half = copy_run(old, tmp_path / "runs", "2024-03-06T013000")
    (half / "threshold.json").unlink()
    fails(2, "promote", half, "--link", link, fragment="threshold.json: missing")
    fails(2, "promote", new, "--link", tmp_path / "runs", fragment="exists and is not a symbolic link")
    fails(2, "promote", new, "--link", link, "--keep", "1")
    # The rename itself failing (a full disk, a read-only folder): the old link stays, no temporary one.
    real = os.replace

    def failing(source, target):
        if Path(target) == link:
            raise OSError(28, "No space left on device")
        return real(source, target)

    monkeypatch.setattr(run_module.os, "replace", failing)
    fails(2, "promote", new, "--link", link, fragment="cannot replace the link (No space left on device)")
    assert link.resolve() == old.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".current.lock", "current", "runs"]


def test_promote_keeps_the_newest_runs_the_replaced_one_and_any_in_use(deployment, tmp_path):
    old, new, link = deployment
    older = [copy_run(old, tmp_path / "runs", f"2024-02-0{day}T013000") for day in (1, 2)]
    (tmp_path / "runs" / "notes").mkdir()  # not a run: never touched
    # What a promote killed (SIGKILL) before its rename or while deleting a run leaves behind.
    (tmp_path / ".current.4242.new").symlink_to("runs/2024-03-05T013000")
    shutil.copytree(old, tmp_path / "runs" / ".2024-01-01T013000.removed")
    with Run(older[1]).reading():
        done = promote(new, link, keep=2)
    assert done["removed"] == [str(older[0])] and done["in_use"] == [str(older[1])]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "2024-02-02T013000", "2024-03-04T013000", "2024-03-05T013000", "notes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".current.lock", "current", "runs"]
    done = promote(new, link, keep=2)  # no longer in use: it goes now
    assert done["removed"] == [str(older[1])] and old.exists()


# -- examples/Makefile's nightly target ------------------------------------------------------
@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_the_nightly_target_swaps_current_twice_and_scoring_follows(runs, tmp_path):
    days = write_days(make_sheet_breaks(3600, seed=4), tmp_path / "incoming")
    for day in days[3:]:  # the first night has four days, the second one more
        day.rename(tmp_path / day.name)
    oldest = copy_run(runs["mahalanobis"], tmp_path / "runs", "2024-01-01T013000")  # goes with --keep 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # The tool as the Makefile calls it, noting where `current` points before each step.
    cli = tmp_path / "cli.sh"
    cli.write_text(f'#!/bin/sh\n(readlink current || echo -) >> links.log\nexec {sys.executable} -m lstm_rare_event "$@"\n')
    cli.chmod(0o755)
    make = ["make", "-f", str(ROOT / "examples" / "Makefile"), "nightly", f"CLI={cli}",
            "HISTORY=incoming/*.csv", "PREPARE_OPTS=--detrend 12", "TRAIN_OPTS=--detector mahalanobis",
            "WARM_START=", "KEEP=2"]

    def nightly(stamp):
        done = subprocess.run([*make, f"STAMP={stamp}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    link, state, out = tmp_path / "current", tmp_path / "state" / "s.state", tmp_path / "scores.csv"
    first = nightly("2024-03-05T013000")
    assert "--previous" not in first and os.readlink(link) == "runs/2024-03-05T013000"
    night1 = link.resolve()
    shutil.move(tmp_path / days[3].name, tmp_path / "incoming")
    score = ("score", link, tmp_path / "incoming" / days[3].name, "--state", state, "--out", out, "--json", "-q")
    before = json.loads(ok(*score).stdout)
    assert before["run"] == str(night1)

    second = nightly("2024-03-06T013000")
    assert "threshold runs/2024-03-06T013000 --previous current --pool 3 --carry " in second
    night2 = link.resolve()
    assert os.readlink(link) == "runs/2024-03-06T013000"
    chosen = json.loads((night2 / "threshold.json").read_text())
    assert chosen["previous"]["run"] == str(night1)
    # the current run's threshold carried into the new one's (same detector: no note)
    assert chosen["carry"]["weight"] > 0 and "note" not in chosen["carry"]
    assert not oldest.exists() and night1.exists()  # --keep 2: this night's and last night's
    # Before every step of both nights, the link pointed at the run scored before (none the
    # first night), never at the run being made.
    assert (tmp_path / "links.log").read_text().split() == ["-"] * 4 + ["runs/2024-03-05T013000"] * 4
    shutil.move(tmp_path / days[4].name, tmp_path / "incoming")
    after = json.loads(ok(*score[:2], tmp_path / "incoming" / days[4].name, *score[3:], "--adopt").stdout)
    assert after["run"] == str(night2) and after["windows"] > 0
    assert json.loads(state.read_text())["adopted"][-1]["from"] == str(night1)
    again = subprocess.run([*make, "STAMP=2024-03-06T013000"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "runs/2024-03-06T013000 exists" in again.stderr
    assert link.resolve() == night2


def test_promote_warns_when_the_state_could_not_be_adopted(deployment, runs, tmp_path):
    old, _, link = deployment
    other = copy_run(runs["pca"], tmp_path / "runs", "2024-03-06T013000")
    result = ok("promote", other, "--link", link, "-q")
    assert "warning: " in result.stderr and "differs from" in result.stderr and "in its detector" in result.stderr
    assert link.resolve() == other.resolve()  # a deliberate change of detector is the operator's to make

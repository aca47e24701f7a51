"""The run directory: commits that are whole or absent under kill -9 and Ctrl-C, the writer
and reader locks, stale staging and partial files, and manifests that are refused.

Kills are real: the step runs in a fresh interpreter whose ``Writer.checkpoint`` hook calls
``os._exit(9)`` at a chosen point of the commit, and this process then opens the run.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, copy_run, fails, invoke, ok

from lstm_rare_event.files import sha256_file
from lstm_rare_event.run import JOURNAL, MANIFEST, STAGING, Run, Writer

KILLER = r"""
import json, os, sys
from pathlib import Path
from lstm_rare_event.run import Writer

kill_at, record = int(sys.argv[1]), Path(sys.argv[2])
labels = []

def checkpoint(label):
    labels.append(label)
    record.write_text(json.dumps(labels))
    if len(labels) == kill_at:
        os._exit(9)

Writer.checkpoint = staticmethod(checkpoint)
if kill_at == 0:  # every file staged, the journal not yet written
    Writer._commit = lambda self: os._exit(9)
from lstm_rare_event.cli import cli
cli(sys.argv[3:], prog_name="lstm-rare-event")
"""
NEVER = 10**6

# (step, source run, arguments, what the new manifest records for the step)
STEPS = {
    # over an autoencoder run: replaces detector/ and train.json, removes history.csv and loss.png
    "train": ("lstm", ["--detector", "mahalanobis"], lambda entry: entry["options"]["detector"] == "mahalanobis"),
    "threshold": ("mahalanobis", ["--rule", "value", "--value", "1"], lambda entry: entry["options"]["rule"] == "value"),
}


def visible_files(run_dir) -> dict[str, str]:
    """Every file of the run but the lock files and the commit's own (hidden) ones, with its sha256."""
    found = {}
    for path in run_dir.rglob("*"):
        name = path.relative_to(run_dir)
        if path.is_file() and not any(part.startswith(".") for part in name.parts):
            found[str(name)] = sha256_file(path)
    return found


def manifest(run_dir) -> dict:
    return json.loads((run_dir / MANIFEST).read_text())


def assert_whole(run_dir) -> dict:
    """Every file the manifest lists exists with its hash, and no other file is there."""
    listed = manifest(run_dir)["files"]
    files = visible_files(run_dir)
    files.pop(MANIFEST)
    assert files == {name: entry["sha256"] for name, entry in listed.items()}
    return files


def start_killer(run_dir, tmp_path, kill_at, step):
    source, args, _ = STEPS[step]
    record = tmp_path / f"checkpoints-{kill_at}.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", KILLER, str(kill_at), str(record), step, str(run_dir), "-q", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), record


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_killed_commit_leaves_the_run_wholly_before_or_wholly_after(runs, tmp_path, step):
    source, _, updated = STEPS[step]
    original = copy_run(runs[source], tmp_path, "original")
    before, old_manifest = visible_files(original), manifest(original)

    # A run to completion, counting the commit's checkpoints.
    done, record = start_killer(copy_run(original, tmp_path, "complete"), tmp_path, NEVER, step)
    assert done.wait(timeout=300) == 0, done.stderr.read()
    labels = json.loads(record.read_text())
    assert labels[0] == "journal" and labels[-1] == "manifest" and len(labels) >= 4, labels
    if step == "train":
        assert "removed history.csv" in labels and "renamed detector" in labels

    # Then a kill at every checkpoint, and one before the journal (k = 0), all at once.
    killed = {k: start_killer(copy_run(original, tmp_path, f"killed-{k}"), tmp_path, k, step)[0]
              for k in range(len(labels) + 1)}
    for k, process in killed.items():
        assert process.wait(timeout=300) == 9, (k, process.stderr.read())

    for k in killed:
        run_dir = tmp_path / f"killed-{k}"
        with Run(run_dir).reading(wait=5):  # any command: finishes a commit whose journal was written
            pass
        assert not (run_dir / JOURNAL).exists()
        if k == 0:  # before the commit point: as it was; the next writer removes the dead staging
            assert visible_files(run_dir) == before and manifest(run_dir) == old_manifest
            with Run(run_dir).locked(wait=5):
                pass
        else:  # after it: as the step left it, whichever file operation the kill cut short
            new = manifest(run_dir)
            assert new != old_manifest and updated(new["steps"][step]), labels[k - 1]
        assert not any((run_dir / STAGING).iterdir()), (k, list((run_dir / STAGING).iterdir()))
        assert_whole(run_dir)
    after = assert_whole(tmp_path / "killed-1")
    assert after != {n: h for n, h in before.items() if n != MANIFEST}
    if step == "train":
        assert "history.csv" not in after and "loss.png" not in after


def test_ctrl_c_while_staging_writes_nothing(runs, tmp_path, monkeypatch):
    from lstm_rare_event.alarms import plots

    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    before = visible_files(run_dir)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "threshold_curve", interrupted)  # threshold.json is staged by then
    result = invoke("threshold", run_dir, "--rule", "value", "--value", "1", "-q")
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "Interrupted; nothing was written."
    assert visible_files(run_dir) == before
    assert not (run_dir / JOURNAL).exists() and not any((run_dir / STAGING).iterdir())


def test_ctrl_c_during_the_commit_is_delivered_after_it(runs, tmp_path, monkeypatch):
    """SIGINT is held while the commit renames files; when it arrives, the CLI must say that
    the step's files were written (they were)."""
    run_dir = copy_run(runs["mahalanobis"], tmp_path)

    def checkpoint(label):
        if label == "journal":
            signal.raise_signal(signal.SIGINT)  # in this thread: delivered at once, deterministically

    monkeypatch.setattr(Writer, "checkpoint", staticmethod(checkpoint))
    result = invoke("threshold", run_dir, "--rule", "value", "--value", "1", "-q")
    assert result.exit_code == 130, result.output
    assert "the step had finished and its files were written" in result.stderr
    assert Run(run_dir).threshold().value == 1
    assert_whole(run_dir)


def test_a_second_writer_gives_up_with_75_and_readers_go_on(runs, new_csv, tmp_path):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    with Run(run_dir).locked(wait=0):
        start = time.monotonic()
        result = fails(75, "threshold", run_dir, "--wait", "0.2", fragment="another step is writing this run")
        assert time.monotonic() - start >= 0.2
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
        # score only takes the shared read lock: the writer's lock does not stop it
        ok("score", run_dir, new_csv, "--out", tmp_path / "scores.csv", "-q")
    ok("threshold", run_dir, "--wait", "0.2", "-q")


def test_a_writer_waits_for_readers_then_gives_up_with_75(runs, tmp_path):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    before = visible_files(run_dir)
    with Run(run_dir).reading(wait=0):
        result = fails(75, "threshold", run_dir, "--wait", "0.2", fragment="a reader holds this run directory")
        assert len(result.stderr.strip().splitlines()) == 1
    assert visible_files(run_dir) == before


def test_a_dead_writers_staging_is_removed_by_the_next_writer(runs, new_csv, tmp_path):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    dead = run_dir / STAGING / "train.999999.abcd1234"
    (dead / "detector").mkdir(parents=True)
    (dead / "detector" / "state.npz").write_bytes(b"half a detector")
    (dead / "train.json").write_text("{}")
    ok("score", run_dir, new_csv, "--out", tmp_path / "scores.csv", "-q")  # readers ignore it
    assert dead.exists()
    ok("threshold", run_dir, "-q")
    assert not dead.exists() and not any((run_dir / STAGING).iterdir())
    assert_whole(run_dir)


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "detector/../../x"])
def test_manifest_names_outside_the_run_are_refused(runs, new_csv, tmp_path, name):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    outside = tmp_path / "x"
    outside.write_text("not the run's")
    target = outside if name != "/etc/passwd" else "/etc/passwd"
    guarded = {outside: outside.read_bytes(), "/etc/passwd": open("/etc/passwd", "rb").read()}
    data = manifest(run_dir)
    data["files"][name] = {"sha256": sha256_file(target), "step": "prepare"}
    (run_dir / MANIFEST).write_text(json.dumps(data))
    fragment = f"{name!r} is not a plain file name inside the run directory"
    fails(2, "score", run_dir, new_csv, "--out", tmp_path / "scores.csv", fragment=fragment)
    out = tmp_path / "out"
    fails(2, "train", run_dir, "--detector", "restart", "--out", out, fragment=fragment)
    fails(2, "evaluate", run_dir, fragment=fragment)
    assert not (tmp_path / "scores.csv").exists()
    assert visible_files(out) == {}  # nothing copied out of the run (only lock files may exist)
    for path, content in guarded.items():
        assert open(path, "rb").read() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run", "x"]


def test_a_journal_naming_files_outside_the_run_is_refused(runs, new_csv, tmp_path):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    (tmp_path / "x").write_text("outside")
    (run_dir / JOURNAL).write_text(json.dumps({"staging": ".staging/a", "files": ["../x"], "remove": ["../x"],
                                               "manifest": manifest(run_dir)}))
    fails(2, "score", run_dir, new_csv, "--out", tmp_path / "scores.csv",
          fragment="not a commit journal written by this tool")
    assert (tmp_path / "x").read_text() == "outside"


@pytest.mark.parametrize("which", ["input", "prepare.json", "detector/scores.csv"])
def test_score_out_may_be_neither_the_input_nor_in_a_run(runs, new_csv, tmp_path, which):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    csv = copy_run(new_csv.parent, tmp_path, "in") / new_csv.name
    out = csv if which == "input" else run_dir / which
    before = visible_files(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    fragment = "--out is the input file" if which == "input" else "--out is inside a run directory"
    result = fails(2, "score", run_dir, csv, "--out", out, fragment=fragment)
    assert len(result.stderr.strip().splitlines()) == 1
    assert visible_files(tmp_path) == before
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == mtimes


def test_a_dead_scores_partial_file_is_removed_by_the_next_score(runs, new_csv, tmp_path):
    dead_pid = 999999
    try:
        os.kill(dead_pid, 0)
        pytest.skip(f"pid {dead_pid} is alive here")
    except ProcessLookupError:
        pass
    leftover = tmp_path / f".scores.csv.{dead_pid}.partial"
    leftover.write_text("time,score\n1999-05-01T00:00:00,")
    alive = tmp_path / f".scores.csv.{os.getppid()}.partial"  # another score still writing
    alive.write_text("time,score\n")
    other = tmp_path / f".other.csv.{dead_pid}.partial"  # not ours to remove
    other.write_text("")
    ok("score", runs["restart"], new_csv, "--out", tmp_path / "scores.csv", "-q")
    assert not leftover.exists() and alive.exists() and other.exists()
    assert (tmp_path / "scores.csv").read_text().startswith("time,score,flag,episode,opened\n")


@pytest.mark.parametrize("content, fragment", [
    ("[1, 2]", "expected a JSON object, found list"),
    ('{"files": {"prepare.json": {"step": "prepare"}}, "steps": {}}', "not a manifest written by this tool"),
    ('{"files": [], "steps": {}}', "not a manifest written by this tool"),
    ('{"files": {}}', "not a manifest written by this tool"),
    ("{", "not valid JSON"),
])
@pytest.mark.parametrize("command", ["score", "threshold"])
def test_a_manifest_of_the_wrong_shape_is_refused(runs, new_csv, tmp_path, content, fragment, command):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    (run_dir / MANIFEST).write_text(content)
    before = visible_files(run_dir)
    args = [new_csv, "--out", tmp_path / "scores.csv"] if command == "score" else []
    result = fails(2, command, run_dir, *args, fragment=fragment)
    assert str(run_dir / MANIFEST) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert visible_files(run_dir) == before


@pytest.mark.parametrize("step", ["threshold", "evaluate"])
def test_each_file_is_hashed_once_per_command(runs, tmp_path, monkeypatch, step):
    """rows.npy (1.2 GB on the real data) was hashed two to four times per threshold or evaluate."""
    from lstm_rare_event import run as run_module

    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    hashed = []
    real = run_module.sha256_file
    monkeypatch.setattr(run_module, "sha256_file", lambda path, *a: (hashed.append(Path(path).name), real(path, *a))[1])
    ok(step, run_dir, "-q")
    read = [name for name in hashed if name in ("rows.npy", "valid.npz", "test.npz", "prepare.json")]
    assert read and len(read) == len(set(read)), read

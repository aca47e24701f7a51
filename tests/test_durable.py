"""Cross-platform and durable (issue 19, item 8) and the defects of its list that live outside
the scoring engine: locks without fcntl, fsync before every committing rename, a symlinked
.staging, a read-only run directory, refused manifests and detector states, outputs over a
run's files, Ctrl-C while starting, a wrong --sep, and Parquet's boolean labels."""

import ast
import builtins
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import ROOT, copy_run, fails, invoke, ok

from lstm_rare_event import files
from lstm_rare_event.cli import cli
from lstm_rare_event.files import sha256_file
from lstm_rare_event.run import JOURNAL, MANIFEST, READ_LOCK, STAGING, Run

PACKAGE = ROOT / "lstm_rare_event"


def rehash(run_dir: Path, name: str) -> None:
    """Record the edited file ``name`` in the manifest as if the run had written it: every
    place that held its old hash (its entry and the inputs of later steps) gets the new one."""
    path = run_dir / MANIFEST
    text = path.read_text()
    old = json.loads(text)["files"][name]["sha256"]
    path.write_text(text.replace(old, sha256_file(run_dir / name)))


def cli_process(*args, env=None, **popen):
    """The command line in a fresh interpreter, with this checkout's package."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "lstm_rare_event", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300, **popen)


# -- item 8: cross-platform ----------------------------------------------------------------
def test_no_module_imports_fcntl():
    """fcntl exists on POSIX only; one import of it and the tool cannot start on Windows."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) else []
            if "fcntl" in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found


def test_the_tool_runs_where_there_is_no_fcntl(new_csv, tmp_path):
    """As on Windows: fcntl cannot be imported. Every module loads, and the steps that lock (a
    run's writers and readers, a stateful score) run; filelock then locks without flock."""
    run_dir = tmp_path / "run"
    steps = [["prepare", new_csv, "--out", run_dir, "--detrend", "0"], ["train", run_dir, "--detector", "mahalanobis"],
             ["threshold", run_dir], ["score", run_dir, new_csv, "--state", tmp_path / "state.json",
                                      "--out", tmp_path / "s.csv"]]
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import json, warnings; warnings.simplefilter('ignore')\n"
            "from lstm_rare_event.cli import cli\n"
            "for args in json.loads(sys.argv[1]):\n"
            "    try:\n"
            "        cli(args + ['-q'], prog_name='lstm-rare-event')\n"
            "    except SystemExit as exc:\n"
            "        assert not exc.code, (args[0], exc.code)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code, json.dumps([[str(a) for a in s] for s in steps])], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "rror" not in done.stderr, done.stderr
    assert len(pd.read_csv(tmp_path / "s.csv")) > 0


# -- item 8: durable -----------------------------------------------------------------------
@pytest.fixture
def disk_log(monkeypatch):
    """Every fsync (of which file or folder) and rename, in order."""
    log = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst, **kw):
        log.append(("replace", os.path.realpath(src), os.path.realpath(dst)))
        real_replace(src, dst, **kw)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the files fsync is given")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


def test_every_committing_rename_follows_an_fsync_of_what_it_renames(runs, tmp_path, disk_log):
    """A rename that commits must find the file's bytes on disk (or a power cut leaves the new
    name on an empty file), and the folder is flushed after it (or the rename itself is lost).
    Both the staged step files and the journal and manifest are checked."""
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    ok("threshold", run_dir, "--rule", "value", "--value", "1", "-q")
    renames = [(i, e) for i, e in enumerate(disk_log) if e[0] == "replace"]
    assert {Path(dst).name for _, (_, _, dst) in renames} >= {JOURNAL, MANIFEST, "threshold.json"}
    for i, (_, src, dst) in renames:
        flushed = {e[1] for e in disk_log[:i] if e[0] == "fsync"}
        inside = [src] if not Path(dst).is_dir() else [str(p) for p in Path(dst).rglob("*")]
        for path in inside:
            before = path if path == src else path.replace(dst, src, 1)
            assert before in flushed, (Path(dst).name, before)
        assert any(e == ("fsync", str(Path(dst).parent)) for e in disk_log[i + 1:]), Path(dst).name
    journal_written = next(i for i, (_, _, dst) in renames if Path(dst).name == JOURNAL)
    first_step_file = next(i for i, (_, src, _) in renames if f"/{STAGING}/" in src)
    assert journal_written < first_step_file


@pytest.mark.parametrize("write", ["atomic_write_text", "score", "demo-data"])
def test_atomic_writes_are_flushed_before_the_rename(runs, new_csv, tmp_path, disk_log, write):
    if write == "atomic_write_text":
        files.atomic_write_text(tmp_path / "a.json", "{}")
    elif write == "score":
        ok("score", runs["mahalanobis"], new_csv, "--out", tmp_path / "scores.csv", "-q")
    else:
        ok("demo-data", "--out", tmp_path / "demo.csv", "--rows", "300", "-q")
    (i, (_, src, dst)), = [(i, e) for i, e in enumerate(disk_log) if e[0] == "replace"]
    assert Path(dst).parent == tmp_path
    assert ("fsync", src) in disk_log[:i] and ("fsync", str(tmp_path)) in disk_log[i + 1:]


def test_fsync_tree_flushes_every_file_and_folder_of_a_staged_tree(tmp_path, disk_log):
    """What a run's commit flushes before its journal: the staged files, then their folders."""
    folder = tmp_path / "staged"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "w.npz").write_bytes(b"weights")
    (folder / "c.json").write_text("{}")
    files.fsync_tree(folder)
    synced = [e[1] for e in disk_log if e[0] == "fsync"]
    assert {str(folder / "sub" / "w.npz"), str(folder / "c.json"), str(folder / "sub"), str(folder)} <= set(synced)
    assert synced.index(str(folder / "sub" / "w.npz")) < synced.index(str(folder / "sub")) < synced.index(str(folder))


# -- defect 2: a symlinked .staging --------------------------------------------------------
def test_a_symlinked_staging_is_removed_not_followed(runs, tmp_path):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    victim = tmp_path / "victim"
    (victim / "precious").mkdir(parents=True)
    (victim / "precious" / "data.txt").write_text("keep me")
    (victim / "notes.txt").write_text("and me")
    shutil.rmtree(run_dir / STAGING, ignore_errors=True)
    (run_dir / STAGING).symlink_to(victim, target_is_directory=True)
    ok("threshold", run_dir, "--rule", "value", "--value", "1", "-q")
    assert (victim / "precious" / "data.txt").read_text() == "keep me" and (victim / "notes.txt").exists()
    assert sorted(p.name for p in victim.iterdir()) == ["notes.txt", "precious"]
    assert not (run_dir / STAGING).is_symlink()
    assert Run(run_dir).threshold().value == 1


def test_a_journal_through_a_symlinked_staging_is_refused(runs, tmp_path):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    victim = tmp_path / "victim"
    (victim / "t").mkdir(parents=True)
    (victim / "t" / "threshold.json").write_text("{}")
    shutil.rmtree(run_dir / STAGING, ignore_errors=True)
    (run_dir / STAGING).symlink_to(victim, target_is_directory=True)
    (run_dir / JOURNAL).write_text(json.dumps({"staging": f"{STAGING}/t", "files": ["threshold.json"], "remove": [],
                                               "manifest": json.loads((run_dir / MANIFEST).read_text())}))
    fails(2, "threshold", run_dir, "-q", fragment="not a commit journal written by this tool")
    assert (victim / "t" / "threshold.json").read_text() == "{}"


# -- defect 7: a read-only run directory ---------------------------------------------------
@pytest.fixture
def read_only(runs, tmp_path, monkeypatch):
    """A run directory this process cannot write, as on a read-only mount or in another user's
    run: chmod -R a-w, and, for root (whom modes do not stop), every open for writing inside
    it fails as on a read-only mount (EROFS)."""
    if os.name == "nt":
        pytest.skip("POSIX modes")
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    for path in [run_dir, *run_dir.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    if os.geteuid() == 0:
        def refused(path, writes):
            if writes and Path(os.fsdecode(path)).resolve().is_relative_to(run_dir):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

        def os_open(path, flags, *args, real=os.open, **kwargs):
            refused(path, flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            return real(path, flags, *args, **kwargs)

        def io_open(file, mode="r", *args, real=io.open, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)):
                refused(file, set(mode) & set("wax+"))
            return real(file, mode, *args, **kwargs)

        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(io, "open", io_open)
        monkeypatch.setattr(builtins, "open", io_open)
    yield run_dir
    for path in [run_dir, *run_dir.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def test_score_and_report_read_a_read_only_run(read_only, new_csv, tmp_path):
    run_dir = read_only
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    ok("score", run_dir, new_csv, "--out", tmp_path / "scores.csv", "-q")
    ok("report", run_dir, "--scores", tmp_path / "scores.csv", "--out", tmp_path / "report.html", "-q")
    assert len(pd.read_csv(tmp_path / "scores.csv")) > 0 and (tmp_path / "report.html").stat().st_size > 0
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_a_reader_without_the_lock_refuses_what_a_commit_changed(runs, new_csv, tmp_path, monkeypatch):
    """The reader that cannot take the lock checks that no commit began or ended while it read;
    here a commit lands between its start and its end."""
    from lstm_rare_event import run as run_module

    run_dir = copy_run(runs["mahalanobis"], tmp_path)

    def cannot_open(path, exclusive, wait, what):
        if not exclusive:
            raise run_module._ReadOnly(f"{path}: cannot open the lock file (Read-only file system)")
        return real(path, exclusive, wait, what)

    real = run_module._read_write_lock
    monkeypatch.setattr(run_module, "_read_write_lock", cannot_open)
    with pytest.raises(run_module.Busy, match="committed to this run directory while it was read"):
        with Run(run_dir).reading(wait=0) as run:
            run.threshold()
            ok("threshold", run_dir, "--rule", "value", "--value", "2", "-q")
    with Run(run_dir).reading(wait=0) as run:  # and with nothing committed meanwhile it reads
        assert run.threshold().value == 2


# -- defect 9: a manifest's step entry that is not an object -------------------------------
@pytest.mark.parametrize("entry", [None, 3, "x", {"inputs": None}, {"inputs": {"prepare.json": 5}}])
def test_a_manifest_step_that_is_not_an_object_is_exit_2(runs, new_csv, tmp_path, entry):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    data = json.loads((run_dir / MANIFEST).read_text())
    data["steps"]["train"] = entry
    (run_dir / MANIFEST).write_text(json.dumps(data))
    result = fails(2, "score", run_dir, new_csv, "--out", tmp_path / "s.csv", fragment=str(run_dir / MANIFEST))
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


# -- defect 9: Ctrl-C while the tool starts ------------------------------------------------
INTERRUPT_AT_IMPORT = r"""
import sys

module = sys.argv[1]

class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == module:
            raise KeyboardInterrupt  # as SIGINT does while this module is imported
        return None

sys.meta_path.insert(0, Interrupt())
sys.argv = ["lstm-rare-event", *sys.argv[2:]]
from lstm_rare_event.__main__ import main
main()
"""


@pytest.mark.parametrize("module", ["click", "pandas", "lstm_rare_event.run"])
def test_ctrl_c_while_starting_is_one_line_and_130(new_csv, tmp_path, module):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", INTERRUPT_AT_IMPORT, module, "prepare", new_csv, "--out",
                           tmp_path / "run"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "Interrupted; nothing was written.\n"
    assert not (tmp_path / "run").exists()


def test_the_console_script_enters_where_an_interrupt_is_caught():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["lstm-rare-event"] == "lstm_rare_event.__main__:main"


PAUSE_WHILE_WRITING = r"""
import sys, time
from pathlib import Path
from lstm_rare_event.scoring import calls, output

marker, written = Path(sys.argv[1]), output.to_csv

def paused(frame):
    marker.write_text("writing")  # the output's partial file is open: the test sends SIGTERM now
    time.sleep(600)
    return written(frame)

calls.to_csv = output.to_csv = paused  # batch writes, stateful appends
sys.argv = ["lstm-rare-event", *sys.argv[2:]]
from lstm_rare_event.__main__ import main
main()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("mode", ["batch", "state"])
def test_sigterm_while_scoring_leaves_no_partial_file(runs, new_csv, tmp_path, mode):
    """kill PID (a cron job stopped, a shutdown) while score writes: its partial output file
    is removed, an appended output cut back, and the exit is one line, 143 (128 + SIGTERM)."""
    out, marker = tmp_path / "out" / "scores.csv", tmp_path / "writing"
    state = ["--state", tmp_path / "state.json"] if mode == "state" else []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", PAUSE_WHILE_WRITING, marker, "score", runs["mahalanobis"],
                                new_csv, "--out", out, "-q", *state], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the hook, not timing the fault
    assert marker.exists(), process.communicate()[1]
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines() == ["Terminated; nothing was written."]
    left = sorted(p.name for p in out.parent.iterdir())
    assert left == (["scores.csv"] if mode == "state" else []), left
    if mode == "state":
        assert out.stat().st_size == 0  # the append was cut back; the state records the empty file
        ok("score", runs["mahalanobis"], new_csv, "--out", tmp_path / "again.csv", "-q", *state)
        assert len(pd.read_csv(tmp_path / "again.csv")) > 0


# -- defect 9: --sep that does not fit the file --------------------------------------------
def test_a_wrong_sep_on_a_comma_file_names_the_comma(new_csv, tmp_path):
    fails(2, "prepare", new_csv, "--out", tmp_path / "run", "--sep", ";",
          fragment="looks comma-separated; try --sep ','")
    fails(2, "prepare", new_csv, "--out", tmp_path / "run", "--sep", "tab",
          fragment="looks comma-separated; try --sep ','")


# -- defect 9: Parquet's boolean labels ----------------------------------------------------
def test_a_parquet_boolean_label_column_reads_as_0_and_1(demo_csv, tmp_path):
    pytest.importorskip("pyarrow", reason="the [parquet] extra (pyarrow) is not installed")
    frame = pd.read_csv(demo_csv, dtype={"time": str})
    frame.assign(y=frame["y"].astype(bool)).to_parquet(tmp_path / "bool.parquet")
    frame.to_parquet(tmp_path / "int.parquet")
    for run in ("bool", "int"):
        ok("prepare", tmp_path / f"{run}.parquet", "--out", tmp_path / run, "-q")
    for name in ("train.npz", "valid.npz", "test.npz", "rows.npy"):
        a, b = (np.load(tmp_path / run / name) for run in ("bool", "int"))
        for key in a.files if name.endswith(".npz") else [None]:
            np.testing.assert_array_equal(a if key is None else a[key], b if key is None else b[key], err_msg=name)


# -- defect 6: detector files that load but cannot be right --------------------------------
def test_a_model_npz_with_an_infinite_weight_is_exit_2(runs, new_csv, tmp_path):
    run_dir = copy_run(runs["lstm"], tmp_path)
    name = "detector/model.npz"
    with np.load(run_dir / name) as data:
        arrays = dict(data)
    key = next(k for k in arrays if k.endswith(".kernel"))
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] = np.inf
    with open(run_dir / name, "wb") as handle:
        np.savez(handle, **arrays)
    rehash(run_dir, name)
    result = fails(2, "score", run_dir, new_csv, "--out", tmp_path / "s.csv", fragment=str(run_dir / name))
    assert "not finite" in result.stderr and key in result.stderr
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("edit, what", [
    (lambda p: -p, "not positive semi-definite"),
    (lambda p: p + np.triu(np.ones_like(p), 1), "not symmetric"),
    (lambda p: np.where(np.eye(len(p), dtype=bool), np.nan, p), "not finite"),
])
def test_a_mahalanobis_precision_that_is_no_precision_is_exit_2(runs, new_csv, tmp_path, edit, what):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    name = "detector/state.npz"
    with np.load(run_dir / name) as data:
        arrays = dict(data)
    arrays["precision"] = edit(arrays["precision"])
    with open(run_dir / name, "wb") as handle:
        np.savez(handle, **arrays)
    rehash(run_dir, name)
    fails(2, "score", run_dir, new_csv, "--out", tmp_path / "s.csv", fragment=f"{run_dir / name}: the precision")
    fails(2, "score", run_dir, new_csv, "--out", tmp_path / "s.csv", fragment=what)


def test_the_saved_detectors_still_load(runs):
    """The checks refuse no detector that train wrote."""
    for run_dir in runs.values():
        with Run(run_dir).reading() as run:
            run.detector()


# -- defect 4: outputs over a run's files or over the history ------------------------------
@pytest.mark.parametrize("name", [MANIFEST, "prepare.json", "detector/state.npz", "new.csv"])
def test_score_from_stdin_never_writes_into_a_run(runs, new_csv, tmp_path, name):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    before = {str(p): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = CliRunner().invoke(cli, ["score", str(run_dir), "-", "--out", str(run_dir / name)],
                                input=new_csv.read_text())
    assert result.exit_code == 2, result.output
    assert "inside a run directory" in result.stderr and str(run_dir / name) in result.stderr
    assert {str(p): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_plot_and_state_never_write_into_a_run(runs, new_csv, tmp_path):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    before = {str(p): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    fails(2, "score", run_dir, new_csv, "--out", tmp_path / "s.csv", "--plot", run_dir / "threshold.png",
          fragment="inside a run directory")
    fails(2, "score", run_dir, new_csv, "--out", tmp_path / "s.csv", "--state", run_dir / "threshold.json",
          fragment="inside a run directory")
    assert {str(p): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_history_and_out_the_same_file_is_refused(runs, new_csv, tmp_path):
    history = Path(shutil.copy(new_csv, tmp_path / "yesterday.csv"))
    kept = history.read_bytes()
    fails(2, "score", runs["mahalanobis"], new_csv, "--history", history, "--out", history,
          fragment="--out is the --history file")
    assert history.read_bytes() == kept


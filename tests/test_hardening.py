"""Issue 10's remaining items: the input's or the environment's fault is exit 2 with one line
naming the path or option, never an internal error; Ctrl-C is always "Interrupted" (130);
messages; no Python warning on stderr. Faults are injected (a patched ``os`` call, a signal
raised from inside a read), never timed."""

import builtins
import errno
import io
import json
import os
import signal
import warnings

import numpy as np
import pytest
from conftest import TINY_LSTM, copy_run, fails, invoke, ok

from lstm_rare_event.files import sha256_file
from lstm_rare_event.run import MANIFEST, STAGING, THRESHOLD_JSON, Run
from lstm_rare_event.synthetic import make_sheet_breaks, write_csv


def one_line(result, *fragments):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Internal error" not in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    """3,000 rows (about 1.3 MB): pandas' C parser reads it in several 256 KB blocks."""
    path = tmp_path_factory.mktemp("big") / "big.csv"
    write_csv(make_sheet_breaks(3000, seed=4), path)
    return path


# -- item 12: --out below a regular file, or in a folder that cannot be written --------------------
def out_commands(runs, csv, out):
    """Every command that writes --out, with its arguments, writing to ``out``."""
    return {
        "demo-data": ["demo-data", "--out", out / "d.csv", "--rows", "200"],
        "prepare": ["prepare", csv, "--out", out / "run"],
        "train": ["train", runs["mahalanobis"], "--detector", "restart", "--out", out / "run"],
        "score": ["score", runs["mahalanobis"], csv, "--out", out / "scores.csv"],
        "backtest": ["backtest", csv, "--out", out / "bt", "--detector", "restart"],
    }


@pytest.mark.parametrize("command", ["demo-data", "prepare", "train", "score", "backtest"])
def test_out_below_a_regular_file_is_exit_2_naming_the_path(runs, demo_csv, tmp_path, command):
    regular = tmp_path / "a_file"
    regular.write_text("not a folder\n")
    args = out_commands(runs, demo_csv, regular)[command]
    result = fails(2, *args, "-q")
    one_line(result, str(regular))
    assert regular.read_text() == "not a folder\n"


@pytest.fixture
def read_only(monkeypatch, tmp_path):
    """A folder ``ro`` that cannot be written, as for a user without permission (the tests may
    run as root, which ignores permission bits, so the os calls are patched instead)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    inside = lambda path: os.path.abspath(os.fsdecode(path)).startswith(str(ro))  # noqa: E731

    def denied(path):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    real_mkdir, real_os_open, real_open = os.mkdir, os.open, builtins.open

    def mkdir(path, *args, **kwargs):
        if inside(path):
            raise FileExistsError(errno.EEXIST, "File exists", path) if os.path.exists(path) else denied(path)
        return real_mkdir(path, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise denied(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and inside(file) and set(mode) & set("wax+"):
            raise denied(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    return ro


@pytest.mark.parametrize("command", ["demo-data", "prepare", "train", "score", "backtest"])
def test_permission_denied_on_an_output_is_exit_2_naming_the_path(runs, demo_csv, read_only, command):
    args = out_commands(runs, demo_csv, read_only)[command]
    result = fails(2, *args, "-q")
    one_line(result, str(read_only), "Permission denied")
    assert list(read_only.iterdir()) == []


def test_environment_errors_are_one_line_and_bugs_stay_internal(runs, tmp_path, monkeypatch):
    """The general rule in the CLI: an OSError naming a path is the environment's fault (exit 2);
    a full disk too; anything else is a bug (exit 1)."""
    from lstm_rare_event.steps import threshold

    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    faults = {
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)): (2, "No space left on device"),
        OSError(errno.EROFS, os.strerror(errno.EROFS), "/mnt/ro/x"): (2, "/mnt/ro/x: Read-only file system"),
        IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), "some/dir"): (2, "some/dir: Is a directory"),
        ValueError("a bug"): (1, "Internal error: ValueError: a bug"),
        OSError(errno.EBADF, os.strerror(errno.EBADF)): (1, "Internal error: OSError"),
    }
    for fault, (code, fragment) in faults.items():
        def raise_fault(*args, fault=fault, **kwargs):
            raise fault

        monkeypatch.setattr(threshold, "run_threshold", raise_fault)
        result = fails(code, "threshold", run_dir, fragment=fragment)
        assert len(result.stderr.strip().splitlines()) == 1, result.output


# -- item 12: options out of range --------------------------------------------------------------
@pytest.mark.parametrize("args, fragment", [
    (("prepare", "{csv}", "--out", "{tmp}/run", "--fractions", "nan,0.5,0.5"), "--fractions"),
    (("prepare", "{csv}", "--out", "{tmp}/run", "--fractions", "inf,-inf,1"), "--fractions"),
    (("prepare", "{csv}", "--out", "{tmp}/run", "--seed", "-1"), "--seed must be between 0 and 4294967295"),
    (("prepare", "{csv}", "--out", "{tmp}/run", "--seed", str(2**40)), "--seed must be between 0 and 4294967295"),
    (("train", "{run}", "--seed", "-1"), "--seed must be between 0 and 4294967295"),
    (("train", "{run}", "--seed", str(2**40)), "--seed must be between 0 and 4294967295"),
    (("demo-data", "--out", "{tmp}/d.csv", "--seed", "-1"), "seed -1"),
])
def test_options_out_of_range_are_exit_2(runs, demo_csv, tmp_path, args, fragment):
    filled = [a.format(csv=demo_csv, tmp=tmp_path, run=runs["lstm"]) for a in args]
    one_line(fails(2, *filled), fragment)
    assert not (tmp_path / "run").exists() and not (tmp_path / "d.csv").exists()


def test_demo_data_takes_any_non_negative_seed(tmp_path):
    """NumPy's generators take seeds of any size: 2**40 is a seed like any other."""
    ok("demo-data", "--out", tmp_path / "d.csv", "--rows", "200", "--seed", str(2**40), "-q")
    assert (tmp_path / "d.csv").stat().st_size > 0


def test_a_network_too_large_is_refused_before_building_it(runs, tmp_path, heavy_imports):
    from lstm_rare_event.detectors.lstm_ae.spec import Architecture, count_params

    run_dir = copy_run(runs["lstm"], tmp_path)
    before = sha256_file(run_dir / MANIFEST)
    result = fails(2, "train", run_dir, "--encoder", "100000000", "-q")
    n_features = Run(run_dir).prepare_info().integer("n_features")
    params = count_params(Architecture((100000000,), (100000000,), "relu", 5, n_features))
    one_line(result, "--encoder", f"{params:,} parameters")
    assert sha256_file(run_dir / MANIFEST) == before
    # refused before TensorFlow is imported: at once, not after a failed allocation
    code = (f"from lstm_rare_event.cli import cli\n"
            f"try:\n    cli(['train', {str(run_dir)!r}, '--encoder', '100000000', '-q'])\n"
            f"except SystemExit as e:\n    assert e.code == 2, e.code\n")
    assert "tensorflow" not in heavy_imports(code)


def test_an_allocation_failure_while_fitting_is_exit_2(runs, tmp_path, monkeypatch):
    """What the parameter limit does not catch (a batch too large for the memory left) is one
    line too: MemoryError, or TensorFlow's ResourceExhaustedError."""
    from lstm_rare_event.detectors.lstm_ae import keras_model

    def exhausted(*args, **kwargs):
        raise keras_model.tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    run_dir = copy_run(runs["lstm"], tmp_path)
    for fault in (exhausted, out_of_memory):
        monkeypatch.setattr(keras_model, "fit", fault)
        one_line(fails(2, "train", run_dir, *TINY_LSTM, "-q"), "the network is too large", "--batch-size")


def test_a_threshold_json_of_the_wrong_shape_is_exit_2(runs, new_csv, tmp_path):
    """Valid JSON, recorded in the manifest (so not caught by its hash), but not a threshold."""
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    for content, fragment in (('[1, 2]', "expected a JSON object"), ('{"value": "high"}', "key 'value'"),
                              ('{"value": 1, "rule": 3}', "key 'rule'")):
        (run_dir / THRESHOLD_JSON).write_text(content)
        manifest = json.loads((run_dir / MANIFEST).read_text())
        manifest["files"][THRESHOLD_JSON]["sha256"] = sha256_file(run_dir / THRESHOLD_JSON)
        (run_dir / MANIFEST).write_text(json.dumps(manifest))
        for args in (("evaluate", run_dir), ("score", run_dir, new_csv, "--out", tmp_path / "s.csv")):
            one_line(fails(2, *args), str(run_dir / THRESHOLD_JSON), fragment)


# -- item 13: Ctrl-C while reading a CSV ------------------------------------------------------------
@pytest.fixture
def sigint_in_second_read(monkeypatch):
    """SIGINT arrives while pandas' C parser reads its 2nd block: the signal is raised from inside
    the file's read(), as a Ctrl-C during a long read does. With CPython 3.11's default handler,
    pandas used to report it as "Error tokenizing data" (a bad CSV, exit 2)."""
    import pandas.io.common

    class Interrupting:
        def __init__(self, handle):
            self._handle, self._reads = handle, 0

        def __getattr__(self, name):
            return getattr(self._handle, name)

        def __iter__(self):
            return iter(self._handle)

        def read(self, *args):
            self._reads += 1
            if self._reads == 2:
                signal.raise_signal(signal.SIGINT)
            return self._handle.read(*args)

    real_open = builtins.open
    monkeypatch.setattr(pandas.io.common, "open", lambda *a, **k: Interrupting(real_open(*a, **k)), raising=False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_while_score_reads_is_interrupted(runs, big_csv, tmp_path, sigint_in_second_read):
    out = tmp_path / "scores.csv"
    result = invoke("score", runs["mahalanobis"], big_csv, "--out", out, "--chunk-rows", "500", "-q")
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "Interrupted; nothing was written."
    assert not out.exists() and not list(tmp_path.glob(".*partial"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_ctrl_c_while_prepare_reads_is_interrupted(big_csv, tmp_path, sigint_in_second_read):
    result = invoke("prepare", big_csv, "--out", tmp_path / "run", "-q")
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "Interrupted; nothing was written."
    assert not Run(tmp_path / "run").has("prepare")


def test_read_errors_never_turn_an_interrupt_into_a_bad_file(big_csv, sigint_in_second_read):
    """Without the CLI's handler (the library called from Python), the interrupt that the C
    parser lost is still raised as one."""
    from lstm_rare_event.preprocess.csv import read_table
    from lstm_rare_event.preprocess.csv import read_chunks

    with pytest.raises(KeyboardInterrupt):
        list(read_chunks(big_csv, 500))
    with pytest.raises(KeyboardInterrupt):
        read_table(big_csv)


# -- item 15: messages, warnings, Keras' NaN line -------------------------------------------------
def test_python_warnings_stay_off_stderr_unless_debug(runs, tmp_path, monkeypatch):
    from lstm_rare_event.steps import threshold

    real = threshold.run_threshold

    def noisy(*args, **kwargs):
        warnings.warn("Mean of empty slice", RuntimeWarning)
        np.log(np.zeros(1))  # NumPy's "divide by zero encountered in log"
        return real(*args, **kwargs)

    monkeypatch.setattr(threshold, "run_threshold", noisy)
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    quiet = ok("threshold", run_dir, "-q")
    assert quiet.stderr == ""
    normal = ok("threshold", run_dir)
    assert "Warning" not in normal.stderr and "empty slice" not in normal.stderr
    debug = ok("threshold", run_dir, "--debug")
    assert "RuntimeWarning: Mean of empty slice" in debug.stderr


def test_no_window_at_all_is_not_called_no_normal_window(runs, tmp_path):
    from lstm_rare_event.detectors import create
    from lstm_rare_event.errors import UserError

    train = Run(runs["mahalanobis"]).split("train")
    empty = train.subset(np.zeros(len(train), dtype=bool))
    with pytest.raises(UserError, match="no windows to train the lstm detector on"):
        create("lstm").fit(empty, train)
    with pytest.raises(UserError, match="no windows to validate the lstm detector on"):
        create("lstm").fit(train, empty)
    with pytest.raises(UserError, match="needs at least 2 normal training windows, got 0 \\(no windows at all\\)"):
        create("mahalanobis").fit(empty)


def test_the_scaler_says_when_the_training_split_has_no_window():
    from lstm_rare_event.errors import UserError
    from lstm_rare_event.preprocess.preprocessor import Preprocessor

    with pytest.raises(UserError, match="no windows in the training split"):
        Preprocessor().fit_scaler(None, np.array([], dtype=np.int64))


def test_a_nan_loss_stops_training_without_printing_on_stdout(runs, tmp_path, capfd):
    """Keras' TerminateOnNaN prints "Invalid loss, terminating training" on stdout, even under -q;
    ours stops as quietly as the rest, and train refuses the diverged model in one line."""
    run_dir = copy_run(runs["lstm"], tmp_path)
    capfd.readouterr()
    result = invoke("train", run_dir, *TINY_LSTM, "--learning-rate", "1e30", "-q")
    captured = capfd.readouterr()
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Invalid loss" not in captured.out + captured.err
    one_line(result, "training diverged")


# -- items 1, 4, 14: checks that had no test ---------------------------------------------------------
def test_an_input_changed_while_the_step_ran_is_refused(runs, tmp_path, monkeypatch):
    """Item 1: the step fingerprints what it read; a file replaced behind the lock's back before
    the commit makes the commit refuse, naming the file and the step to re-run."""
    from lstm_rare_event.detectors.mahalanobis import MahalanobisDetector

    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    real_fit = MahalanobisDetector.fit

    def fit_then_replace(self, train, valid=None):
        (run_dir / "train.npz").write_bytes((run_dir / "test.npz").read_bytes())
        return real_fit(self, train, valid)

    monkeypatch.setattr(MahalanobisDetector, "fit", fit_then_replace)
    result = fails(2, "train", run_dir, "--detector", "mahalanobis", "-q")
    one_line(result, "train.npz: changed while this step ran", f"lstm-rare-event prepare INPUT --out {run_dir}")


def test_prepare_waits_for_a_running_train_instead_of_replacing_its_inputs(runs, demo_csv, tmp_path, monkeypatch):
    """Item 1's race: a prepare started while train runs must not replace train's inputs."""
    from lstm_rare_event.detectors.mahalanobis import MahalanobisDetector
    from lstm_rare_event.run import EXIT_BUSY

    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    real_fit = MahalanobisDetector.fit
    seen = []

    def fit_during_prepare(self, train, valid=None):
        seen.append(invoke("prepare", demo_csv, "--out", run_dir, "--detrend", "0", "--wait", "0", "-q"))
        return real_fit(self, train, valid)

    monkeypatch.setattr(MahalanobisDetector, "fit", fit_during_prepare)
    ok("train", run_dir, "--detector", "mahalanobis", "-q")
    assert seen[0].exit_code == EXIT_BUSY, seen[0].output
    assert Run(run_dir).manifest()["steps"]["prepare"]["options"]["detrend"] == 12
    ok("threshold", run_dir, "-q")  # the trained detector belongs with the prepared data


def test_staging_is_inside_the_run_directory(runs, tmp_path):
    """Item 4: renames never cross a file system, so a run directory may be a mount point."""
    run = Run(copy_run(runs["mahalanobis"], tmp_path))
    with run.locked(), run.writer("threshold") as out:
        assert out.path("x").parent.parent == run.path / STAGING
        staged = out.path("x").parent
    assert not staged.exists()


def test_a_run_directory_named_like_mathtext_trains(runs, tmp_path):
    """Item 14: the run's name is the loss plot's title; `$\\foo$` must not be parsed as mathtext."""
    out = tmp_path / "run$\\foo$"
    ok("train", runs["lstm"], *TINY_LSTM, "--out", out, "-q")
    assert (out / "loss.png").stat().st_size > 0

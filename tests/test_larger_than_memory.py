"""Data larger than memory: windows cut on demand from memory-mapped rows, prepare in blocks,
training from a tf.data pipeline. What is held whole must never change a number: a prepare in
small blocks gives the windows and scores of one pass, and every view of a WindowArray equals
the materialized windows."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, fails, ok

from lstm_rare_event.preprocess import csv, rowfile
from lstm_rare_event.preprocess.rowfile import NpyWriter, RowFile
from lstm_rare_event.preprocess.windows import SPLITS, WindowArray, Windows, load_rows
from lstm_rare_event.run import ROWS_NPY, STAGING, Run
from lstm_rare_event.steps.prepare import PrepareOptions, prepare


def windows_of(rows, ends, lookback):
    return np.stack([rows[e - lookback + 1 : e + 1] for e in ends])


def test_window_array_views_equal_the_materialized_windows():
    rows = np.arange(60, dtype=np.float32).reshape(20, 3)
    ends = np.array([2, 3, 7, 11, 19])
    X = WindowArray(rows, ends, 3)
    full = windows_of(rows, ends, 3)
    assert X.shape == full.shape and len(X) == 5
    np.testing.assert_array_equal(np.asarray(X), full)
    np.testing.assert_array_equal(X[:, -1, :], full[:, -1, :])
    np.testing.assert_array_equal(X[:, 0, 1], full[:, 0, 1])
    np.testing.assert_array_equal(X[..., 0], full[..., 0])
    mask = np.array([True, False, True, False, True])
    np.testing.assert_array_equal(np.asarray(X[mask]), full[mask])
    np.testing.assert_array_equal(X[mask, -1, :], full[mask, -1, :])
    np.testing.assert_array_equal(X[3], full[3])
    t = np.arange(5).astype("datetime64[s]")
    batches = Windows(X, np.zeros(5, np.int8), t, t, t).batches(2)
    np.testing.assert_array_equal(np.concatenate([np.asarray(b.X) for b in batches]), full)
    with pytest.raises(IndexError):
        X[:, 3, :]


def test_window_array_of_an_array_round_trips():
    full = np.random.default_rng(0).normal(size=(4, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(WindowArray.of(full)), full)


def test_row_file_reads_back_views_and_npy_writer_makes_a_loadable_file(tmp_path):
    data = np.random.default_rng(1).normal(size=(10, 3))
    rows = RowFile.create(tmp_path / "r.f64", 3)
    rows.append(data[:4])
    rows.append(data[4:])
    assert len(rows) == 10 and rows.shape == (10, 3)
    np.testing.assert_array_equal(np.asarray(rows), data)
    np.testing.assert_array_equal(np.asarray(rows[3:8][1:3]), data[4:6])
    assert len(rows[8:20]) == 2 and len(rows[7:2]) == 0
    writer = NpyWriter(tmp_path / "r.npy", (10, 3))
    writer.append(data[:6])
    writer.append(data[6:])
    writer.close()
    np.testing.assert_array_equal(load_rows(tmp_path / "r.npy"), data.astype(np.float32))


@pytest.mark.parametrize("options", [
    {},  # detrending on, time split
    {"split": "random", "allow_gaps": True, "detrend": 0},
    {"last": "4d", "lookback": 3},
])
def test_prepare_in_small_blocks_gives_the_windows_of_one_pass(demo_csv, options, monkeypatch):
    whole = prepare(demo_csv, PrepareOptions(**options))
    # CSV chunks and row blocks of a few hundred rows: the file crosses many of both.
    monkeypatch.setattr(csv, "CHUNK_ROWS", 701)
    monkeypatch.setattr(rowfile, "BLOCK_ROWS", 433)
    blocked = prepare(demo_csv, PrepareOptions(**options))
    assert whole.info == blocked.info
    # Only the scaler's sums are taken over blocks: equal to rounding.
    np.testing.assert_allclose(blocked.preprocessor.mean_, whole.preprocessor.mean_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(blocked.preprocessor.scale_, whole.preprocessor.scale_, rtol=1e-12)
    for name, w in whole.splits.items():
        b = blocked.splits[name]
        np.testing.assert_allclose(np.asarray(b.X), np.asarray(w.X), rtol=0, atol=1e-6)
        for field in ("y", "end_time", "event_time", "segment_start"):
            np.testing.assert_array_equal(getattr(b, field), getattr(w, field))


def test_a_prepared_run_holds_rows_once_and_reads_them_memory_mapped(tmp_path, demo_csv):
    ok("prepare", demo_csv, "--out", tmp_path / "run", "-q")
    run = Run(tmp_path / "run")
    info = json.loads((tmp_path / "run/prepare.json").read_text())
    rows = load_rows(tmp_path / "run" / ROWS_NPY)
    assert rows.shape == (info["rows_after_shift"], info["n_features"])
    with run.reading():
        splits = {name: run.split(name) for name in SPLITS}
    assert all(isinstance(s.X.rows, np.memmap) for s in splits.values())
    # Windows would store every row lookback times; the run stores it once.
    assert (tmp_path / "run" / ROWS_NPY).stat().st_size < info["windows"] * info["lookback"] * info["n_features"] * 4 / 4
    assert not list((tmp_path / "run" / STAGING).iterdir())  # no scratch or staging left


def test_training_batches_are_each_window_once_per_pass_in_seeded_orders():
    from lstm_rare_event.detectors.lstm_ae.keras_model import window_dataset

    rows = np.arange(40, dtype=np.float32).reshape(20, 2)
    X = WindowArray(rows, np.arange(2, 20), 3)

    def passes(seed, n=2):
        data = window_dataset(X, 4, shuffle_seed=seed)
        return [np.concatenate([b.numpy() for b in data]) for _ in range(n)]

    first, second = passes(5)
    assert [len(b) for b in window_dataset(X, 4)] == [4, 4, 4, 4, 2]
    for epoch in (first, second):
        assert sorted(map(tuple, epoch[:, -1, :])) == sorted(map(tuple, np.asarray(X)[:, -1, :]))
    assert not np.array_equal(first, second)  # a new order each pass
    again = passes(5)
    np.testing.assert_array_equal(again[0], first)  # the same orders for the same seed
    np.testing.assert_array_equal(again[1], second)
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in window_dataset(X, 4)]), np.asarray(X))


KILLED_PREPARE = r"""
import os, sys
from lstm_rare_event.preprocess.preprocessor import Preprocessor
# Killed when the values are spilled and detrended, before the scaled rows are written.
Preprocessor.write_scaled = lambda self, rows, path: os._exit(9)
from lstm_rare_event.cli import cli
cli(sys.argv[1:], prog_name="lstm-rare-event")
"""


def test_a_prepare_killed_midway_leaves_nothing_that_the_next_step_keeps(tmp_path, demo_csv):
    run_dir = tmp_path / "run"
    ok("prepare", demo_csv, "--out", run_dir, "-q")
    before = (run_dir / "manifest.json").read_text()
    killed = subprocess.run([sys.executable, "-c", KILLED_PREPARE, "prepare", str(demo_csv), "--out", str(run_dir),
                             "--detrend", "0", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9
    leftovers = [p.name for p in (run_dir / STAGING).iterdir()]
    assert any(name.startswith("prepare.scratch.") for name in leftovers), leftovers
    assert (run_dir / "manifest.json").read_text() == before  # the run is the one before
    ok("train", run_dir, "--detector", "mahalanobis", "-q")  # the next writer clears the leftovers
    assert not list((run_dir / STAGING).iterdir())


def test_a_rejected_input_leaves_no_run_directory(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,y,x1\n2024-01-01 00:00,0,1\n2024-01-01 00:02,0,oops\n")
    fails(2, "prepare", bad, "--out", tmp_path / "new-run", fragment="oops")
    assert not (tmp_path / "new-run").exists()


def resident_file_kib() -> int:
    """This process's resident pages of mapped files (Linux)."""
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_released_rows_leave_resident_memory_and_read_the_same(tmp_path):
    from lstm_rare_event.preprocess.windows import release

    data = np.random.default_rng(2).normal(size=(100_000, 59)).astype(np.float32)  # 23 MB
    np.save(tmp_path / "rows.npy", data)
    rows = load_rows(tmp_path / "rows.npy")
    before = resident_file_kib()
    assert float(rows.sum(dtype=np.float64)) == pytest.approx(float(data.sum(dtype=np.float64)))
    touched = resident_file_kib()
    assert touched - before > 20_000
    release(rows)
    assert resident_file_kib() < touched - 20_000
    np.testing.assert_array_equal(rows[500:600], data[500:600])  # read again from the page cache

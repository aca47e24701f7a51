"""Integration tests on the real ProcessMiner file, when it is beside the checkout.

The file is never part of the repository: it is looked for at ../shared/data/sheet-break.csv.gz
(or the path in SHEET_BREAK_CSV), and these tests are skipped, saying why, when it is absent.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import ok
from lstm_rare_event.preprocess.csv import read_table
from lstm_rare_event.preprocess.windows import SPLITS, Windows
from lstm_rare_event.run import Run

REAL = Path(os.environ.get("SHEET_BREAK_CSV", Path(__file__).resolve().parents[2] / "shared/data/sheet-break.csv.gz"))

pytestmark = pytest.mark.skipif(not REAL.exists(), reason=f"real data not found at {REAL} (set SHEET_BREAK_CSV)")


def test_prepare_reproduces_the_recipe_counts(tmp_path):
    result = ok("prepare", REAL, "--out", tmp_path / "run", "--split", "random", "--seed", "123",
                "--allow-gaps", "--json")
    info = json.loads(result.stdout)
    assert info["input"]["rows"] == 18_398 and info["rows_after_shift"] == 18_274
    assert info["n_features"] == 59 and "x28" not in info["features"] and "x61" not in info["features"]
    assert info["windows"] == 18_268
    counts = {name: s["windows"] for name, s in info["splits"].items()}
    assert counts == {"train": 11_691, "valid": 2_923, "test": 3_654}
    assert info["splits"]["test"]["positive"] == 49
    run = Run(tmp_path / "run")
    assert {name: len(run.split(name)) for name in SPLITS} == counts
    assert run.split("test").y.sum() == 49


def test_prepare_defaults_split_by_time_without_gap_windows(tmp_path):
    result = ok("prepare", REAL, "--out", tmp_path / "run", "--json")
    info = json.loads(result.stdout)
    splits = info["splits"]
    assert splits["train"]["last_end"] < splits["valid"]["first_end"] < splits["test"]["first_end"]
    # windows across the 107 time gaps are left out, so there are fewer than the recipe's 18,268
    assert info["time_gaps"] == 107 and info["windows"] < 18_268

    # the saved preprocessor turns the file into exactly the windows prepare wrote
    run = Run(tmp_path / "run")
    pre = run.preprocessor()
    assert pre.features_ == info["features"] and len(pre.features_) == 59
    every = pre.transform(read_table(REAL))
    prepared = Windows.concat([run.split(name) for name in SPLITS])
    at = np.minimum(np.searchsorted(every.end_time, prepared.end_time), len(every) - 1)
    np.testing.assert_array_equal(every.end_time[at], prepared.end_time)
    for name in Windows.FIELDS:
        np.testing.assert_array_equal(getattr(every.subset(at), name), getattr(prepared, name), err_msg=name)
    # one segment start per stretch between gaps: the first row and the 107 restarts
    assert len(np.unique(every.segment_start)) <= 108


def test_prepare_in_blocks_gives_the_same_windows_and_scores(monkeypatch):
    """The real file prepared in CSV chunks and row blocks of a few thousand rows (as a file of
    millions is) gives the windows of one pass, and a detector fitted on one scores both alike."""
    from lstm_rare_event.detectors.mahalanobis import MahalanobisDetector
    from lstm_rare_event.preprocess import csv, rowfile
    from lstm_rare_event.steps.prepare import prepare

    whole = prepare(REAL)
    monkeypatch.setattr(csv, "CHUNK_ROWS", 5_000)
    monkeypatch.setattr(rowfile, "BLOCK_ROWS", 3_000)
    blocked = prepare(REAL)
    assert whole.info == blocked.info
    for name in SPLITS:
        np.testing.assert_allclose(np.asarray(blocked.splits[name].X), np.asarray(whole.splits[name].X), rtol=0, atol=1e-6)
    detector = MahalanobisDetector().fit(whole.splits["train"])
    np.testing.assert_allclose(detector.score(blocked.splits["test"]), detector.score(whole.splits["test"]), rtol=1e-6)


def test_default_max_gap_keeps_the_exact_rules_windows(tmp_path):
    """The real file's steps are whole cadences, so 1.5 cadences finds the gaps that any step
    over one cadence (the rule before --max-gap, --max-gap 1) found: the same bytes."""
    ok("prepare", REAL, "--out", tmp_path / "default", "-q")
    ok("prepare", REAL, "--out", tmp_path / "exact", "--max-gap", "1", "-q")
    for name in ("rows.npy", "train.npz", "valid.npz", "test.npz"):
        assert (tmp_path / "default" / name).read_bytes() == (tmp_path / "exact" / name).read_bytes(), name

"""Integration tests on the real ProcessMiner file, when it is beside the checkout.

The file is never part of the repository: it is looked for at ../shared/data/sheet-break.csv.gz
(or the path in SHEET_BREAK_CSV), and these tests are skipped, saying why, when it is absent.
"""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstm_rare_event.cli import cli

REAL = Path(os.environ.get("SHEET_BREAK_CSV", Path(__file__).resolve().parents[2] / "shared/data/sheet-break.csv.gz"))

pytestmark = pytest.mark.skipif(not REAL.exists(), reason=f"real data not found at {REAL} (set SHEET_BREAK_CSV)")


def test_prepare_reproduces_the_recipe_counts(tmp_path):
    args = ["prepare", str(REAL), "--out", str(tmp_path / "run"), "--split", "random", "--seed", "123",
            "--allow-gaps", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["input"]["rows"] == 18_398 and info["rows_after_shift"] == 18_274
    assert info["n_features"] == 59 and "x28" not in info["features"] and "x61" not in info["features"]
    assert info["windows"] == 18_268
    counts = {name: s["windows"] for name, s in info["splits"].items()}
    assert counts == {"train": 11_691, "valid": 2_923, "test": 3_654}
    assert info["splits"]["test"]["positive"] == 49


def test_prepare_defaults_split_by_time_without_gap_windows(tmp_path):
    result = CliRunner().invoke(cli, ["prepare", str(REAL), "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    splits = info["splits"]
    assert splits["train"]["last_end"] < splits["valid"]["first_end"] < splits["test"]["first_end"]
    # windows across the 107 time gaps are left out, so there are fewer than the recipe's 18,268
    assert info["time_gaps"] == 107 and info["windows"] < 18_268

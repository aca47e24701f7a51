"""The whole pipeline on the built-in demo data, as `make demo` runs it, through the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from lstm_rare_event import __version__
from lstm_rare_event.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def makefile_flags(name):
    """The flags `make demo` passes (DEMO_PREPARE, DEMO_THRESHOLD in the Makefile), so this
    test runs what the demo runs."""
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith(f"{name} ?="):
            return line.split("?=", 1)[1].split()
    raise AssertionError(f"{name} not in the Makefile")


DEMO_PREPARE = makefile_flags("DEMO_PREPARE")
DEMO_THRESHOLD = makefile_flags("DEMO_THRESHOLD")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Demo data prepared, trained and thresholded (on validation) as `make demo` does it."""
    root = tmp_path_factory.mktemp("demo")
    invoke("demo-data", "--out", root / "demo.csv", "--seed", 7)
    invoke("prepare", root / "demo.csv", "--out", root / "run", *DEMO_PREPARE)
    invoke("train", root / "run", "--seed", 7, "-q")
    invoke("threshold", root / "run", "-q", *DEMO_THRESHOLD)
    return root


def test_demo_breaks_are_mostly_caught(demo):
    report = json.loads(invoke("evaluate", demo / "run", "--json", "-q").stdout)
    events = report["events"]
    assert events["n_breaks"] >= 5
    assert events["caught"] > events["n_breaks"] / 2
    assert report["windows"]["roc_auc"] > 0.9
    # the threshold was chosen on validation for about one false alarm a day; test stays near it
    assert events["false_alarms_per_day"] < 5


def test_demo_scores_a_new_day(demo):
    invoke("demo-data", "--out", demo / "new-day.csv", "--rows", 720, "--seed", 8)
    result = CliRunner().invoke(cli, ["score", str(demo / "run"), str(demo / "new-day.csv"),
                                      "--out", str(demo / "scores.csv"), "--json", "--fail-on-alert"])
    assert result.exit_code in (0, 3), result.output
    summary = json.loads(result.stdout)
    scores = pd.read_csv(demo / "scores.csv")
    assert len(scores) == summary["windows"] > 600
    assert int(scores["flag"].sum()) == summary["alarms"]
    assert result.exit_code == (3 if summary["alarms"] else 0)


COMMANDS = ["demo-data", "prepare", "train", "inspect", "threshold", "evaluate", "score"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_teaches(name):
    result = invoke(name, "--help")
    assert "Example:" in result.stdout and "lstm-rare-event " + name in result.stdout
    assert "Exit codes:" in result.stdout and "2  bad input" in result.stdout


def test_top_level_help_lists_the_pipeline():
    text = invoke("--help").stdout
    assert all(name in text for name in COMMANDS)


def test_version_and_module_entry_point():
    assert __version__ in invoke("--version").stdout
    out = subprocess.run([sys.executable, "-m", "lstm_rare_event", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout

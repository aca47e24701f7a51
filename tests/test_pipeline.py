"""The whole pipeline on the built-in demo data, as `make demo` runs it, through the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import built_once
from conftest import invoke as run
from conftest import ok as invoke

from lstm_rare_event.version import __version__

ROOT = Path(__file__).resolve().parents[1]


def makefile_flags(name):
    """The flags `make demo` passes (DEMO_PREPARE, DEMO_TRAIN in the Makefile), so this
    test runs what the demo runs."""
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith(f"{name} ?="):
            return line.split("?=", 1)[1].split()
    raise AssertionError(f"{name} not in the Makefile")


DEMO_PREPARE = makefile_flags("DEMO_PREPARE")
DEMO_TRAIN = makefile_flags("DEMO_TRAIN")


@pytest.fixture(scope="session")
def demo(tmp_path_factory, worker_id):
    """Demo data prepared, trained and thresholded (on validation) as `make demo` does it, once
    for all workers."""
    return built_once(tmp_path_factory, worker_id, "demo", _build_demo)


def _build_demo(root):
    invoke("demo-data", "--out", root / "demo.csv", "--seed", 7)
    invoke("prepare", root / "demo.csv", "--out", root / "run", *DEMO_PREPARE)
    invoke("train", root / "run", "--seed", 7, "-q", *DEMO_TRAIN)
    invoke("threshold", root / "run", "-q")
    invoke("train", root / "run", "--detector", "mahalanobis", "--out", root / "run-mahalanobis", "-q")
    invoke("threshold", root / "run-mahalanobis", "-q")


@pytest.mark.parametrize("name", ["run", "run-mahalanobis"])
def test_demo_breaks_are_mostly_warned(demo, name):
    report = json.loads(invoke("evaluate", demo / name, "--json", "-q").stdout)
    episodes = report["episodes"]
    assert episodes["n_breaks"] >= 5
    assert episodes["warned"] > episodes["n_breaks"] / 2
    assert report["windows"]["roc_auc"] > 0.9
    # the threshold was chosen on validation for at most one false episode a day; test stays near it
    assert episodes["false_episodes_per_day"] < 3


def test_demo_compares_the_autoencoder_with_mahalanobis(demo):
    for name in ("run", "run-mahalanobis"):
        invoke("evaluate", demo / name, "-q")
    result = json.loads(invoke("compare", demo / "run", demo / "run-mahalanobis", "--json", "--replicates", 200).stdout)
    assert set(result["bootstrap"]["detectors"]) == {"lstm", "mahalanobis"}
    text = invoke("compare", demo / "run", demo / "run-mahalanobis", "--replicates", 200).stdout
    assert "lstm - mahalanobis: ROC-AUC" in text


def test_demo_scores_a_new_day(demo):
    invoke("demo-data", "--out", demo / "new-day.csv", "--rows", 720, "--seed", 8)
    result = run("score", demo / "run", demo / "new-day.csv", "--out", demo / "scores.csv", "--json",
                 "--fail-on-alert")
    assert result.exit_code in (0, 3), result.output
    summary = json.loads(result.stdout)
    scores = pd.read_csv(demo / "scores.csv")
    assert len(scores) == summary["windows"] > 600
    assert int(scores["flag"].sum()) == summary["alarms"]
    assert result.exit_code == (3 if summary["alarms"] else 0)


COMMANDS = ["demo-data", "prepare", "train", "inspect", "threshold", "evaluate", "score", "compare"]


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

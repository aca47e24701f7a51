"""--help teaches the right thing: examples that work with the defaults, the recipe's settings
only as "reproduce the 2019 recipe" with all of its flags; --rule value warns when it flags
more than 10 % of validation windows."""

import json

import pytest
from conftest import copy_run, ok

from lstm_rare_event.cli import cli
from lstm_rare_event.steps.threshold import value_warning

COMMANDS = sorted(cli.commands)
# Settings that only the 2019 recipe uses: never shown as a plain example.
RECIPE_ONLY = ("--split random", "--allow-gaps", "--clip 0", "--detrend 0", "--value 0.3", "--arch article",
               "--learning-rate 1e-4", "--error last")
RECIPE_FLAGS = {
    "prepare": ("--split random", "--seed 123", "--allow-gaps", "--detrend 0", "--clip 0"),
    "train": ("--arch article", "--epochs 200", "--batch-size 64", "--learning-rate 1e-4", "--patience 0",
              "--error last"),
    "threshold": ("--rule value", "--value 0.3"),
}


def examples(name: str) -> list[str]:
    text = ok(name, "--help").output
    block = text.split("Example:")[1].split("Exit codes:")[0]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("lstm-rare-event")]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_an_example(name):
    assert examples(name), f"{name} --help has no example"


@pytest.mark.parametrize("name", COMMANDS)
def test_recipe_settings_appear_only_as_the_recipe(name):
    for line in examples(name):
        if any(flag in line for flag in RECIPE_ONLY):
            # inspect only describes a network; every other command reproduces the recipe's results
            assert ("2019 recipe" if name == "inspect" else "reproduce the 2019 recipe") in line, line
            for flag in RECIPE_FLAGS.get(name, ()):
                assert flag in line, f"{name}: the recipe example lacks {flag}: {line}"


def test_the_default_examples_work_on_a_default_run(runs, tmp_path):
    # threshold's and evaluate's first examples, on a run prepared with the defaults
    run = copy_run(runs["mahalanobis"], tmp_path)
    summary = json.loads(ok("threshold", run, "--target", "1", "--horizon", "60", "--json", "-q").stdout)
    assert summary["validation"]["episodes"]["false_episodes_per_day"] <= 1
    ok("evaluate", run, "--reference", runs["restart"], "--json", "-q")


def _validation(flagged, n):
    return {"confusion": {"tp": 1, "fp": flagged - 1, "tn": n - flagged, "fn": 0}, "n_windows": n,
            "episodes": {"false_episodes_per_day": 12.0}}


def test_value_warning_above_one_tenth_of_validation_windows():
    assert value_warning("value", 0.3, _validation(10, 100)) is None  # 10 %: not above
    text = value_warning("value", 0.3, _validation(11, 100))
    assert text.startswith("--value 0.3 flags 11% of validation windows, 12 false alarm episodes per day")
    assert value_warning("max-f", 0.3, _validation(90, 100)) is None  # only --rule value


def test_threshold_warns_and_saves_the_warning(runs, tmp_path):
    run = copy_run(runs["mahalanobis"], tmp_path)
    result = ok("threshold", run, "--rule", "value", "--value", "0")  # flags every window
    assert "warning: --value 0 flags 100% of validation windows" in result.output
    assert "flags 100%" in json.loads((run / "threshold.json").read_text())["warning"]
    quiet = ok("threshold", run, "--rule", "value", "--value", "1e9")
    assert "warning" not in quiet.output and "warning" not in json.loads((run / "threshold.json").read_text())

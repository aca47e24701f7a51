"""threshold --carry: the nightly threshold averaged with the previous run's, so that a retrain
moves only part of a night's jump (issue 19: a new threshold 1.4x the old silenced a day)."""

import json
import math

import pytest

from conftest import copy_run, fails, invoke, ok
from lstm_rare_event.alarms.thresholds import ThresholdOptions, carried
from lstm_rare_event.errors import UserError


def test_carried_is_the_weighted_geometric_mean_of_the_choice_and_the_previous_threshold():
    assert carried(1528.0, 1060.0, 0.5) == pytest.approx(math.sqrt(1528 * 1060))
    assert carried(40.0, 10.0, 0.75) == pytest.approx(10 ** 0.75 * 40 ** 0.25)
    # up or down alike: the same share of the jump in log terms
    assert math.log(carried(40.0, 10.0, 0.5) / 10) == pytest.approx(-math.log(carried(2.5, 10.0, 0.5) / 10))
    assert carried(40.0, 10.0, 0.0) == 40.0
    assert carried(3.0, 0.0, 0.5) == 3.0 and carried(-1.0, 10.0, 0.5) == -1.0  # no log of 0 or less


def test_carry_is_a_weight_below_one_recorded_only_when_on():
    for bad in (1.0, -0.1, True):
        with pytest.raises(UserError, match="--carry"):
            ThresholdOptions(carry=bad)
    assert "carry" not in ThresholdOptions().recorded()
    assert ThresholdOptions(carry=0.5).recorded()["carry"] == 0.5


def test_threshold_carries_the_previous_run_s_threshold(runs, tmp_path):
    a, b = copy_run(runs["mahalanobis"], tmp_path, "a"), copy_run(runs["mahalanobis"], tmp_path, "b")
    ok("threshold", a, "--rule", "value", "--value", 10, "-q")
    summary = json.loads(ok("threshold", b, "--rule", "value", "--value", 40, "--previous", a, "--carry", 0.5,
                            "--json", "-q").stdout)
    assert summary["value"] == pytest.approx(20.0)
    assert summary["carry"] == {"weight": 0.5, "previous": 10.0, "chosen": 40.0}
    assert summary["previous"]["ratio"] == pytest.approx(2.0)
    # the validation figures are those of the value the run keeps, not of the rule's choice
    flagged = summary["validation"]["confusion"]["tp"] + summary["validation"]["confusion"]["fp"]
    alone = json.loads(ok("threshold", b, "--rule", "value", "--value", 20, "--json", "-q").stdout)
    assert flagged == alone["validation"]["confusion"]["tp"] + alone["validation"]["confusion"]["fp"]
    # the next night carries this one's kept value, not its rule's choice: an exponential average
    c = copy_run(b, tmp_path, "c")
    ok("threshold", b, "--rule", "value", "--value", 40, "--previous", a, "--carry", 0.5, "-q")
    again = json.loads(ok("threshold", c, "--rule", "value", "--value", 40, "--previous", b, "--carry", 0.5,
                          "--json", "-q").stdout)
    assert again["value"] == pytest.approx(math.sqrt(20 * 40))
    assert "threshold, weighted 0.5" in ok("threshold", c, "--rule", "value", "--value", 40, "--previous", b, "--carry",
                                 0.5).stdout


def test_carry_needs_previous_and_a_comparable_score(runs, tmp_path):
    b = copy_run(runs["mahalanobis"], tmp_path, "b")
    fails(2, "threshold", b, "--carry", 0.5, fragment="--carry 0.5 needs --previous RUN")
    assert invoke("threshold", b, "--carry", 1, "--previous", b).exit_code == 2
    # another detector's threshold cuts another score: the rule's choice stands, with a note
    result = invoke("threshold", b, "--rule", "value", "--value", 40, "--previous", runs["restart"], "--carry", 0.5,
                    "--json")
    summary = json.loads(result.stdout)
    assert summary["value"] == 40.0 and "not carried" in summary["carry"]["note"]
    assert "not carried" in result.stderr

"""The verdict: hand-computed cases of chance, the alarm budget, warned breaks, a reference
detector and drift, and the same wording in evaluate and backtest."""

import json

import numpy as np
import pytest
from conftest import copy_run, fails, ok

from lstm_rare_event.alarms import verdict as v
from lstm_rare_event.alarms.bootstrap import bootstrap_metrics


def interval(estimate, low, high):
    return {"estimate": estimate, "low": low, "high": high}


def episodes(warned, n_breaks, mean=None, median=None, horizon=30.0):
    return {"warned": warned, "n_breaks": n_breaks, "horizon_minutes": horizon,
            "mean_lead_minutes": float("nan") if mean is None else mean,
            "median_lead_minutes": float("nan") if median is None else median}


# -- chance -------------------------------------------------------------------------------

def test_an_interval_including_one_half_is_chance():
    c = v.chance(interval(0.551, 0.46, 0.64))
    assert c["better_than_chance"] is False
    assert c["text"] == "ranks breaks no better than chance: ROC-AUC 0.551 [0.460, 0.640] includes 0.5"


def test_an_interval_above_one_half_is_better_than_chance():
    c = v.chance(interval(0.8, 0.51, 0.9))
    assert c["better_than_chance"] is True and "better than chance" in c["text"]


def test_an_interval_below_one_half_is_worse_than_chance():
    c = v.chance(interval(0.3, 0.2, 0.49))
    assert c["better_than_chance"] is False and c["text"].startswith("ranks breaks worse than chance")


def test_chance_of_a_bootstrap_on_scores_that_carry_no_information():
    # Every window scores the same: ROC-AUC exactly 0.5 in every replicate, so the interval is
    # [0.5, 0.5], which does not lie above 0.5: chance.
    y = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0])
    groups = np.array([0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 6, 6])
    boot = bootstrap_metrics(y, {"flat": np.ones(12)}, groups, n=200, seed=0)
    roc = boot["detectors"]["flat"]["roc_auc"]
    assert (roc["estimate"], roc["low"], roc["high"]) == (0.5, 0.5, 0.5)
    assert v.chance(roc)["better_than_chance"] is False


def test_no_interval_no_chance_verdict():
    assert v.chance(None) is None
    assert v.chance(interval(float("nan"), float("nan"), float("nan"))) is None


# -- budget -------------------------------------------------------------------------------

def test_budget_broken():
    # The case: 6.5 false alarm episodes per day against 1 promised: 6.5 > 1.5 x 1.
    b = v.budget(1.0, 6.5)
    assert b["held"] is False and b["ratio"] == 6.5
    assert b["text"] == "alarm budget broken: 6.5 false alarms/day against 1 promised (6.5x)"


def test_budget_held_within_one_and_a_half_times():
    assert v.budget(1.0, 1.5)["held"] is True  # 1.5 = 1.5 x 1: held
    assert v.budget(1.0, 1.51)["held"] is False
    assert v.budget(2.0, 0.0)["held"] is True
    assert v.budget(1.0, 0.8)["text"] == "alarm budget held: 0.8 false alarms/day against 1 promised"


def test_no_budget_without_the_alarms_per_day_rule():
    assert v.budget(None, 3.0) is None
    assert v.budget(1.0, None)["held"] is False


# -- warned breaks ------------------------------------------------------------------------

def test_warned_breaks_and_lead_times():
    assert v.warned(episodes(3, 5, 12.0, 10.0))["text"] == \
        "warned 3 of 5 breaks 30 min ahead, on average 12 min before (median 10)"
    assert v.warned(episodes(0, 31))["text"].startswith("warned 0 of 31 breaks")
    assert v.warned(episodes(0, 0))["text"] == "no break to warn of"


# -- a reference detector -----------------------------------------------------------------

def test_beaten_by_a_reference():
    r = v.reference("mahalanobis", interval(-0.12, -0.2, -0.05))
    assert (r["beats"], r["worse"]) == (False, True)
    assert r["text"] == ("worse than mahalanobis: paired ROC-AUC difference -0.120 [-0.200, -0.050], below 0")


def test_beats_a_reference_and_no_difference():
    assert v.reference("restart", interval(0.1, 0.02, 0.2))["beats"] is True
    same = v.reference("restart", interval(0.01, -0.03, 0.05))
    assert (same["beats"], same["worse"]) == (False, False) and "no different from restart" in same["text"]


def test_the_reference_from_a_paired_bootstrap():
    # Detector a ranks both breaks above every normal window (AUC 1); b ranks them below (AUC 0):
    # every replicate's difference is 1, so a beats b and b is worse than a.
    y = np.array([0, 0, 1, 0, 0, 1, 0, 0])
    groups = np.array([0, 0, 1, 2, 2, 3, 4, 4])
    a = np.where(y == 1, 2.0, 1.0)
    boot = bootstrap_metrics(y, {"a": a, "b": -a}, groups, n=100, seed=0)
    d = boot["differences"][0]["roc_auc"]
    assert (d["estimate"], d["low"], d["high"]) == (1.0, 1.0, 1.0)
    assert v.reference("b", d)["beats"] is True


# -- drift --------------------------------------------------------------------------------

def test_drift_when_validation_loss_is_over_twice_the_training_loss():
    assert v.drift(0.1, 0.2) is None  # exactly 2x: not over
    d = v.drift(0.1, 0.3, {"x1": 0.2, "x2": -4.0, "x3": 3.0, "x4": 1.0})
    assert d["ratio"] == pytest.approx(3.0)
    assert [s["sensor"] for s in d["sensors"]] == ["x2", "x3", "x4"]
    assert d["text"].endswith("the sensors that moved most: x2 (-4.0 SD), x3 (+3.0 SD), x4 (+1.0 SD)")


def test_sensor_shifts_in_training_standard_deviations():
    train = np.array([[0.0, 10.0], [2.0, 10.0]])  # x1: mean 1, SD 1; x2: constant (SD 0)
    valid = np.array([[4.0, 11.0], [4.0, 13.0]])  # x1 moves 3 SD; x2 by 2 (SD 0 counts as 1)
    assert v.sensor_shifts(train, valid, ["x1", "x2"]) == {"x1": 3.0, "x2": 2.0}


# -- the whole verdict --------------------------------------------------------------------

def test_the_verdict_lines():
    result = v.verdict(roc=interval(0.551, 0.46, 0.64), promised=1.0, measured=6.5, episodes=episodes(0, 31),
                       references={"mahalanobis": interval(-0.1, -0.18, -0.02)}, drift_=v.drift(1.0, 3.0, {"x9": 5}))
    assert result["lines"] == [
        "Ranks breaks no better than chance: ROC-AUC 0.551 [0.460, 0.640] includes 0.5; worse than mahalanobis: "
        "paired ROC-AUC difference -0.100 [-0.180, -0.020], below 0.",
        "Warned 0 of 31 breaks (an alarm episode starting at most 30 min before); alarm budget broken: 6.5 false "
        "alarms/day against 1 promised (6.5x).",
        "Warning: validation loss is 3.0x the training loss: the validation period differs from the training "
        "period (drift); the sensors that moved most: x9 (+5.0 SD).",
    ]
    assert result["chance"]["better_than_chance"] is False and result["budget"]["held"] is False
    assert result["references"][0]["worse"] is True


def test_one_line_for_backtest():
    result = v.verdict(roc=interval(0.8, 0.7, 0.9), promised=1.0, measured=1.2, episodes=episodes(2, 4, 20, 20))
    assert v.one_line(result, "mahalanobis") == (
        "mahalanobis: warned 2 of 4 breaks 30 min ahead, on average 20 min before (median 20); alarm budget "
        "held: 1.2 false alarms/day against 1 promised; ranks breaks better than chance: ROC-AUC 0.800 "
        "[0.700, 0.900], above 0.5")


# -- in evaluate --------------------------------------------------------------------------

def test_evaluate_prints_and_saves_the_verdict(runs, tmp_path):
    run = copy_run(runs["mahalanobis"], tmp_path)
    report = json.loads(ok("evaluate", run, "--reference", runs["restart"], "--json", "-q").stdout)
    verdict = report["verdict"]
    assert verdict["chance"]["roc_auc"]["estimate"] == pytest.approx(report["windows"]["roc_auc"])
    assert verdict["budget"]["promised"] == 1.0
    assert verdict["budget"]["measured"] == pytest.approx(report["episodes"]["false_episodes_per_day"])
    assert [r["name"] for r in verdict["references"]] == ["restart"]
    assert verdict["bootstrap"]["replicates"] == 1000
    text = ok("evaluate", run, "-q").stdout
    assert "Verdict:" in text and "than chance" in text and "alarm budget" in text


def test_evaluate_refuses_a_reference_from_another_prepare(runs, tmp_path, demo_csv):
    other = tmp_path / "other"
    ok("prepare", demo_csv, "--out", other, "--detrend", "0", "-q")
    ok("train", other, "--detector", "restart", "-q")
    fails(2, "evaluate", runs["mahalanobis"], "--reference", other, fragment="test split differs")


def test_evaluate_warns_of_drift_from_the_training_history(runs, tmp_path):
    run = copy_run(runs["lstm"], tmp_path)
    history = (run / "history.csv").read_text().splitlines()
    # The last epoch's validation loss made 10x its training loss (manifest updated to match).
    from lstm_rare_event.files import sha256_file

    head, last = history[0].split(","), history[-1].split(",")
    last[head.index("val_loss")] = str(10 * float(last[head.index("loss")]))
    (run / "history.csv").write_text("\n".join([*history[:-1], ",".join(last)]) + "\n")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"]["history.csv"]["sha256"] = sha256_file(run / "history.csv")
    (run / "manifest.json").write_text(json.dumps(manifest))
    report = json.loads(ok("evaluate", run, "--json", "-q").stdout)
    drift = report["verdict"]["drift"]
    assert drift["ratio"] == pytest.approx(10.0)
    assert len(drift["sensors"]) == 3 and all(s["sensor"].startswith("x") for s in drift["sensors"])
    assert report["verdict"]["lines"][-1].startswith("Warning: validation loss is 10.0x the training loss")

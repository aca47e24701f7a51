"""The threshold and evaluate commands on hand-made run directories with known scores, and on
real runs of every detector."""

import json

import numpy as np
import pytest
from conftest import copy_run, invoke, ok

from lstm_rare_event.alarms import evaluation
from lstm_rare_event.detectors.lstm_ae import LstmDetector, LstmOptions
from lstm_rare_event.detectors.lstm_ae import numpy_engine as engine
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.detectors.mahalanobis import MahalanobisDetector
from lstm_rare_event.preprocess.windows import Windows, save_splits
from lstm_rare_event.run import DETECTOR, ROWS_NPY, Run


START = np.datetime64("2024-03-01T00:00:00", "s")
NAT = np.datetime64("NaT", "s")


def windows(last, y, breaks=()):
    """Windows of 3 steps x 2 features, zero except the last step, which is ``last`` in both
    features. Window k ends at minute 2k; ``breaks`` maps a break minute to its rows."""
    n = len(last)
    X = np.zeros((n, 3, 2), dtype=np.float32)
    X[:, -1, :] = np.asarray(last, dtype=np.float32)[:, None]
    end_time = START + np.arange(n) * np.timedelta64(2, "m")
    event_time = np.full(n, NAT)
    for minute, rows in breaks:
        event_time[list(rows)] = START + np.timedelta64(minute, "m")
    return Windows(X, np.asarray(y, dtype=np.int8), end_time, event_time, np.full(n, START))


# Under the detectors below a window's score is last**2 (the last-step error of a network that
# reconstructs zeros, or the Mahalanobis distance from 0 with precision I/2).
# Validation scores, window end minute below, [] positive; each positive precedes its own
# break by 2 minutes (at 10, 16 and 20):
#   0.25  1  2.25  4  [6.25]  9  12.25  [16]  20.25  [25]
#   0     2  4     6   8     10  12     14    16     18
VALID = windows([0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5], [0, 0, 0, 0, 1, 0, 0, 1, 0, 1],
                breaks=[(10, [4]), (16, [7]), (20, [9])])
# Test: break A at minute 10 (rows 3 and 4, ending at minutes 6 and 8), break B at minute 22
# (rows 9 and 10, ending at 18 and 20). Scores:
#   1  16  1  [1]  [25]  1   1   2.25  1   [20.25]  [25]  12.25
#   0  2   4  6    8     10  12  14    16  18       20    22
TEST = windows([1, 4, 1, 1, 5, 1, 1, 1.5, 1, 4.5, 5, 3.5], [0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0],
               breaks=[(10, [3, 4]), (22, [9, 10])])
# shift 2 rows x 2 minutes: the default warning horizon is 4 minutes
INFO = {"features": ["a", "b"], "n_features": 2, "lookback": 3, "interval_minutes": 2.0, "options": {"shift": 2}}


def mahalanobis():
    """A Mahalanobis detector at mean 0 with precision I/2: the score is the mean of the two
    squared last-row values, last**2 here."""
    detector = MahalanobisDetector()
    detector.n_features_, detector.mean_, detector.precision_ = 2, np.zeros(2), np.eye(2) / 2
    return detector


def lstm(error="last", weights=None):
    """An LSTM autoencoder with the given weights; all zeros (the default) reconstruct every
    window as zeros, so the error is the window itself squared: last**2 with --error last,
    last**2 / 3 with --error mean (one step of three is nonzero)."""
    detector = LstmDetector(LstmOptions(encoder=(4,), decoder=(4,), activation="tanh", error=error))
    arch = Architecture((4,), (4,), "tanh", 3, 2)
    if weights is None:
        weights = [np.zeros(shape, np.float32) for _, arrays in engine.weight_layout(arch) for shape in arrays.values()]
    detector.arch_, detector.n_features_ = arch, 2
    detector.model_ = engine.NumpyModel.from_weights(arch, weights)
    return detector


def write_prepared(path, valid=VALID, test=TEST, info=INFO):
    run = Run(path)
    with run.locked(create=True), run.writer("prepare", {}, inputs={}) as out:
        save_splits(out.path(ROWS_NPY), {"valid": out.path("valid.npz"), "test": out.path("test.npz")},
                    {"valid": valid, "test": test})
        out.json("prepare.json", info)


def write_detector(path, detector):
    """Save ``detector`` as the run's train step would, with its own save()."""
    run = Run(path)
    with run.locked():
        run.check("prepare", ["prepare.json", "valid.npz"])
        with run.writer("train", {"detector": detector.name}) as out:
            detector.save(out.path(DETECTOR))


def read_manifest(path):
    return Run(path).manifest()


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "run"
    write_prepared(path)
    write_detector(path, mahalanobis())
    return path


def test_threshold_max_f_known_answer_and_files(run):
    result = invoke("threshold", run, "--rule", "max-f")
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "threshold.json").read_text())
    # F1 is 2/3 with the top 3 scores flagged (25, 20.25, 16) and with the top 6; the higher wins
    assert saved["value"] == (12.25 + 16) / 2
    assert (saved["rule"], saved["params"], saved["detector"], saved["engine"]) == (
        "max-f", {"beta": 1.0}, "mahalanobis", "numpy")
    assert (saved["merge_minutes"], saved["horizon_minutes"]) == (30.0, 4.0)  # the horizon: shift 2 x 2 minutes
    v = saved["validation"]
    assert v["confusion"] == {"tn": 6, "fp": 1, "fn": 1, "tp": 2}
    assert (v["n_windows"], v["n_positive"]) == (10, 3)
    assert v["precision"] == pytest.approx(2 / 3) and v["recall"] == pytest.approx(2 / 3)
    assert v["f1"] == pytest.approx(2 / 3)
    assert v["false_alarms_per_day"] == pytest.approx(1 / (10 * 2 / 1440))
    # The windows ending at 14, 16 and 18 are one episode starting at 14: it warns of the break
    # at 16 (14 is within 4 minutes before it), so it is no false alarm.
    e = v["episodes"]
    assert (e["episodes"], e["false_episodes"], e["warned"], e["n_breaks"]) == (1, 0, 1, 3)
    assert [b["lead_minutes"] for b in e["breaks"]] == [None, 2.0, None]
    # Ten windows are 1/72 day: no false episode fits in a budget of 1 or 5 a day. Lowering the
    # threshold from the top, the episode starts at 18, 16, 14, then 12 (all within 4 minutes
    # of a break); at 7.625 it starts at 10, warning of nothing (the break at 10 is not after
    # it): the budget thresholds stop just above, at 10.625.
    assert saved["budgets"] == [{"alarms_per_day": 1.0, "value": 10.625}, {"alarms_per_day": 5.0, "value": 10.625}]
    assert (run / "threshold.png").read_bytes()[:4] == b"\x89PNG"
    step = read_manifest(run)["steps"]["threshold"]
    assert sorted(step["inputs"]) == ["detector/detector.json", "detector/state.npz", "prepare.json", "rows.npy",
                                      "valid.npz"]
    assert "14.12" in result.stdout and "precision" in result.stdout
    assert "threshold 14.125" in result.stderr  # progress goes to stderr, not into the table


def test_threshold_json_output_is_the_saved_file(run):
    result = ok("threshold", run, "--rule", "recall", "--target", "1", "--json")
    assert json.loads(result.stdout) == json.loads((run / "threshold.json").read_text())
    assert json.loads(result.stdout)["value"] == (4 + 6.25) / 2  # the lowest positive is 6.25


def test_evaluate_known_confusion_matrix_events_episodes_and_budgets(run):
    # --merge 4: only flagged windows 2 minutes apart (neighbours) are one episode
    ok("threshold", run, "--rule", "max-f", "--merge", "4")
    result = ok("evaluate", run, "--json")
    report = json.loads(result.stdout)
    assert report == json.loads((run / "evaluate.json").read_text())
    assert report["threshold"] == {"rule": "max-f", "params": {"beta": 1.0}, "value": 14.125,
                                   "merge_minutes": 4.0, "horizon_minutes": 4.0}
    assert report["detector"] == "mahalanobis"
    w = report["windows"]
    # threshold 14.125 flags rows 1 (normal, 16), 4, 9, 10; row 3 (positive, 1) is missed
    assert w["confusion"] == {"tn": 7, "fp": 1, "fn": 1, "tp": 3}
    assert (w["precision"], w["recall"], w["f1"]) == pytest.approx((0.75, 0.75, 0.75))
    assert w["false_positive_rate"] == pytest.approx(1 / 8)
    # ROC-AUC: of 32 (positive, normal) pairs the positive wins 24 and ties 5 (1 against 1)
    assert w["roc_auc"] == pytest.approx(26.5 / 32)
    # AP: recall 0.5 at precision 1 (the two 25s), 0.75 at 1 (20.25), 1.0 at 4/12 (all at 1)
    assert w["pr_auc"] == pytest.approx(0.5 + 0.25 + 0.25 / 3)
    e = report["events"]
    assert (e["n_breaks"], e["caught"], e["missed"]) == (2, 2, 0)
    # A: earliest flagged window ends at minute 8, break at 10; B: 18 and 22
    assert [b["lead_minutes"] for b in e["breaks"]] == [2.0, 4.0]
    assert e["mean_lead_minutes"] == 3.0
    assert e["false_alarms_per_day"] == pytest.approx(1 / (12 * 2 / 1440))
    # Episodes: flagged at minutes 2 | 8 | 18, 20. The one at 8 warns of A (10), the one from
    # 18 of B (22); the one at 2 is 8 minutes before A, beyond the 4-minute horizon: false.
    ep = report["episodes"]
    assert (ep["merge_minutes"], ep["horizon_minutes"]) == (4.0, 4.0)
    assert (ep["episodes"], ep["false_episodes"], ep["warned"], ep["missed"]) == (3, 1, 2, 0)
    assert [b["lead_minutes"] for b in ep["breaks"]] == [2.0, 4.0]
    assert ep["false_episodes_per_day"] == pytest.approx(1 / (12 * 2 / 1440))  # 60
    # The budget threshold 10.625 (validation, merge 4 as well) also flags 12.25 at minute 22,
    # which joins the episode from 18: the same three episodes, one false.
    rows = report["alarm_budgets"]["rows"]
    assert [(r["alarms_per_day"], r["value"]) for r in rows] == [(1.0, 10.625), (5.0, 10.625)]
    assert [(r["warned"], r["n_breaks"], r["false_episodes_per_day"], r["mean_lead_minutes"]) for r in rows] == [
        (2, 2, pytest.approx(60.0), 3.0)] * 2
    assert "validation" in report["alarm_budgets"]["basis"]
    for name in ("error_timeline.png", "roc_pr.png", "error_hist.png"):
        assert (run / name).read_bytes()[:4] == b"\x89PNG"
    assert sorted(read_manifest(run)["steps"]["evaluate"]["inputs"]) == [
        "detector/detector.json", "detector/state.npz", "prepare.json", "rows.npy", "test.npz", "threshold.json"]


def test_the_default_merge_makes_the_test_alarms_one_early_episode(run):
    # Merged under 30 minutes, the flagged windows at 2, 8, 18 and 20 are one episode from 2:
    # too early to warn of either break, so one false episode and both breaks unwarned, while
    # per window (events) both breaks are caught.
    ok("threshold", run, "--rule", "max-f")
    report = json.loads(ok("evaluate", run, "--json").stdout)
    ep = report["episodes"]
    assert (ep["episodes"], ep["false_episodes"], ep["warned"], ep["merge_minutes"]) == (1, 1, 0, 30.0)
    assert report["events"]["caught"] == 2


def test_evaluate_table(run):
    ok("threshold", run, "--rule", "max-f", "--merge", "4")
    result = ok("evaluate", run)
    for text in ("TN / FP / FN / TP", "7 / 1 / 1 / 3", "ROC-AUC", "breaks caught", "2 of 2", "breaks warned",
                 "Alarm budgets"):
        assert text in result.stdout


def test_merge_and_horizon_chosen_at_threshold_are_used_by_evaluate(run):
    ok("threshold", run, "--rule", "max-f", "--merge", "10", "--horizon", "60")
    saved = json.loads((run / "threshold.json").read_text())
    assert (saved["merge_minutes"], saved["horizon_minutes"]) == (10.0, 60.0)
    assert (saved["validation"]["episodes"]["merge_minutes"], saved["validation"]["episodes"]["horizon_minutes"]) == (
        10.0, 60.0)
    report = json.loads(ok("evaluate", run, "--json").stdout)
    assert (report["threshold"]["merge_minutes"], report["threshold"]["horizon_minutes"]) == (10.0, 60.0)
    ep = report["episodes"]
    assert (ep["merge_minutes"], ep["horizon_minutes"]) == (10.0, 60.0)
    # Flagged at 2, 8 | 18, 20: 8 and 18 are 10 minutes apart, not under 10, so two episodes.
    # Within an hour both warn: the one from 2 of A (lead 8) and of B (lead 20, the earliest
    # warning), the one from 18 of B. Neither is false.
    assert (ep["episodes"], ep["false_episodes"], ep["warned"]) == (2, 0, 2)
    assert [b["lead_minutes"] for b in ep["breaks"]] == [8.0, 20.0]


@pytest.mark.parametrize("error, false_positives", [("last", 3), ("mean", 2)])
def test_error_definition_chosen_at_train_is_used_by_threshold_and_evaluate(tmp_path, error, false_positives):
    # A zero-weight autoencoder: at 1, test row 7 (2.25 last, 0.75 mean) is a false alarm only
    # with the last-step error; rows 1 (16 | 5.33) and 11 (12.25 | 4.08) are with both.
    path = tmp_path / "run"
    write_prepared(path)
    write_detector(path, lstm(error))
    ok("threshold", path, "--rule", "value", "--value", "1")
    report = json.loads(ok("evaluate", path, "--json").stdout)
    assert report["detector"] == "lstm"
    assert report["windows"]["confusion"]["fp"] == false_positives


def test_with_a_real_numpy_model(tmp_path):
    path = tmp_path / "run"
    write_prepared(path)
    rng = np.random.default_rng(0)
    arch = Architecture((4,), (4,), "tanh", 3, 2)
    weights = [rng.normal(0, 0.5, shape).astype(np.float32)
               for _, arrays in engine.weight_layout(arch) for shape in arrays.values()]
    write_detector(path, lstm("mean", weights))
    result = ok("threshold", path, "--rule", "max-f", "--json")
    scores = Run(path).detector().score(VALID)
    expected = evaluation.choose_on_validation(evaluation.scored(scores, VALID, 2.0, 30.0, 4.0), "max-f", {"beta": 1.0})
    assert json.loads(result.stdout)["value"] == expected["value"]
    ok("evaluate", path)


# -- every detector, through the command line --------------------------------------------

@pytest.mark.parametrize("name", ["lstm", "mahalanobis", "pca", "restart"])
def test_threshold_and_evaluate_work_for_every_detector(runs, tmp_path, name):
    path = copy_run(runs[name], tmp_path)
    # the fixture's threshold: default horizon, the label shift in minutes
    info = Run(path).prepare_info()
    default = json.loads((path / "threshold.json").read_text())
    assert default["horizon_minutes"] == info.data["options"]["shift"] * info.data["interval_minutes"]
    assert default["rule"] == "alarms-per-day" and default["merge_minutes"] == 30.0

    saved = json.loads(ok("threshold", path, "--rule", "max-f", "--merge", "10", "--horizon", "60", "--json").stdout)
    assert saved == json.loads((path / "threshold.json").read_text())
    assert (saved["detector"], saved["rule"], saved["merge_minutes"], saved["horizon_minutes"]) == (
        name, "max-f", 10.0, 60.0)
    report = json.loads(ok("evaluate", path, "--json").stdout)
    assert report["detector"] == name and report["threshold"]["value"] == saved["value"]
    assert report["windows"]["n_windows"] == len(Run(path).split("test"))
    assert (report["episodes"]["merge_minutes"], report["episodes"]["horizon_minutes"]) == (10.0, 60.0)
    rows = report["alarm_budgets"]["rows"]
    assert [(r["alarms_per_day"], r["value"]) for r in rows] == [(b["alarms_per_day"], b["value"]) for b in saved["budgets"]]
    assert [r["alarms_per_day"] for r in rows] == [1.0, 5.0]
    assert all({"false_episodes_per_day", "warned", "n_breaks", "mean_lead_minutes"} <= set(r) for r in rows)


# -- what is refused ---------------------------------------------------------------------

def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_run_directory(tmp_path):
    assert_one_line_error(invoke("threshold", tmp_path / "nope"), "no such run directory")
    assert_one_line_error(invoke("evaluate", tmp_path / "nope"), "no such run directory",
                          "re-run `lstm-rare-event prepare")
    assert not (tmp_path / "nope").exists()  # a mistyped path is not left behind as a run directory


def test_missing_detector_names_train(tmp_path):
    write_prepared(tmp_path / "run")
    assert_one_line_error(invoke("threshold", tmp_path / "run"), "no train results", "re-run `lstm-rare-event train")


def test_missing_detector_file_names_train(run):
    (run / "detector" / "state.npz").unlink()
    assert_one_line_error(invoke("threshold", run), "state.npz", "missing", "re-run `lstm-rare-event train")


def test_keras_engine_without_a_keras_model(tmp_path):
    path = tmp_path / "run"
    write_prepared(path)
    write_detector(path, lstm())  # saved without a Keras model: model.npz only
    assert_one_line_error(invoke("threshold", path, "--engine", "keras"), "model.keras")


def test_missing_validation_split_names_prepare(run):
    (run / "valid.npz").unlink()
    assert_one_line_error(invoke("threshold", run), "valid.npz", "missing", "re-run `lstm-rare-event prepare")


def test_evaluate_without_threshold_names_the_threshold_step(run):
    assert_one_line_error(invoke("evaluate", run), "no threshold results", "re-run `lstm-rare-event threshold")


def test_threshold_from_other_data_is_refused(run):
    ok("threshold", run)
    write_prepared(run, valid=windows([1, 2, 3], [0, 1, 0], breaks=[(6, [1])]))  # prepare re-run: new validation data
    write_detector(run, mahalanobis())
    assert_one_line_error(invoke("evaluate", run), "threshold results were made from a different",
                          "re-run `lstm-rare-event threshold")
    assert not (run / "evaluate.json").exists()


def test_foreign_file_is_refused(run):
    save_splits(None, {"valid": run / "valid.npz"}, {"valid": windows([1, 2, 3], [0, 1, 0])})  # copied in from elsewhere
    assert_one_line_error(invoke("threshold", run), "valid.npz", "sha256 mismatch", "re-run `lstm-rare-event prepare")


def test_edited_threshold_json_is_refused(run):
    ok("threshold", run)
    (run / "threshold.json").write_text("{}")
    assert_one_line_error(invoke("evaluate", run), "threshold.json", "sha256 mismatch",
                          "re-run `lstm-rare-event threshold")


def rewrite_threshold(path, change):
    """Change threshold.json as a step would have written it: recorded in the manifest, so
    only its content is wrong."""
    run = Run(path)
    data = json.loads((path / "threshold.json").read_text())
    change(data)
    step = read_manifest(path)["steps"]["threshold"]
    with run.locked():
        with run.writer("threshold", step["options"], inputs=step["inputs"]) as out:
            out.json("threshold.json", data)
            out.path("threshold.png").write_bytes((path / "threshold.png").read_bytes())


@pytest.mark.parametrize("change", [
    lambda d: d.pop("value"),
    lambda d: d.update(value="high"),
    lambda d: d.update(value=None),
    lambda d: d.update(value=True),
], ids=["missing", "text", "null", "bool"])
def test_threshold_json_without_a_numeric_value_is_refused(run, change):
    ok("threshold", run)
    rewrite_threshold(run, change)
    assert_one_line_error(invoke("evaluate", run), "threshold.json", "'value'", "re-run `lstm-rare-event threshold")
    assert not (run / "evaluate.json").exists()


def test_label_rule_without_validation_positives_names_a_working_rule(tmp_path):
    path = tmp_path / "run"
    write_prepared(path, valid=windows([1, 2, 3], [0, 0, 0]))
    write_detector(path, mahalanobis())
    assert_one_line_error(invoke("threshold", path, "--rule", "max-f"), "--rule alarms-per-day or --rule value")
    assert not (path / "threshold.json").exists()
    ok("threshold", path, "--rule", "alarms-per-day")


def test_the_error_mode_is_no_threshold_option(run):
    # it belongs to the lstm detector now (train --error), so a threshold cannot disagree with it
    result = invoke("threshold", run, "--error", "last")
    assert result.exit_code == 2 and "--error" in result.output


@pytest.mark.parametrize("args, fragment", [
    (["--rule", "value", "--beta", "2"], "--beta does not apply to --rule value"),
    (["--rule", "recall", "--target", "1.5"], "expected a recall in (0, 1]"),
    (["--merge", "-1"], "--merge"),
    (["--horizon", "0"], "--horizon"),
])
def test_bad_rule_options(run, args, fragment):
    assert_one_line_error(invoke("threshold", run, *args), fragment)


def test_prepare_json_without_interval(tmp_path):
    path = tmp_path / "run"
    write_prepared(path, info={k: v for k, v in INFO.items() if k != "interval_minutes"})
    write_detector(path, mahalanobis())
    assert_one_line_error(invoke("threshold", path), "prepare.json", "interval_minutes",
                          "re-run `lstm-rare-event prepare")


def test_threshold_previous_warns_when_the_value_moves_over_twice(runs, tmp_path):
    a, b = copy_run(runs["mahalanobis"], tmp_path, "a"), copy_run(runs["mahalanobis"], tmp_path, "b")
    ok("threshold", a, "--rule", "value", "--value", 10, "-q")
    near = json.loads(ok("threshold", b, "--rule", "value", "--value", 19, "--previous", a, "--json", "-q").stdout)
    assert near["previous"]["ratio"] == pytest.approx(1.9) and near["previous"]["warning"] is None
    far = invoke("threshold", b, "--rule", "value", "--value", 4, "--previous", a)
    assert far.exit_code == 0 and "0.4x the previous run's 10" in far.stderr
    assert "0.4x" in json.loads((b / "threshold.json").read_text())["previous"]["warning"]
    # the run itself as the previous one: read before it is rewritten
    assert "Warning: the threshold 40 is 10x" in ok("threshold", b, "--rule", "value", "--value", 40, "--previous", b).stdout


def test_threshold_previous_of_another_detector_says_the_values_do_not_compare(runs, tmp_path):
    b = copy_run(runs["mahalanobis"], tmp_path, "b")
    result = ok("threshold", b, "--previous", runs["restart"], "--json", "-q")
    assert "thresholds another detector (restart" in json.loads(result.stdout)["previous"]["warning"]


def test_threshold_on_validation_shorter_than_the_budget_extrapolates_and_says_so(runs, tmp_path):
    # the fixture's validation is a fraction of a day: a budget of 1 a day would allow no alarm
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    result = invoke("threshold", run_dir, "--json")
    summary = json.loads(result.stdout)
    assert "extrapolates" in summary["note"] and summary["note"] in result.stderr
    assert summary["tail"]["peaks"] >= 10
    # a budget the validation period can hold counts episodes as before: no note, no tail
    assert "note" not in json.loads(ok("threshold", run_dir, "--target", 100, "--json", "-q").stdout)

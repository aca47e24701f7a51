"""The threshold and evaluate commands on a hand-made run directory with known errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lstm_rare_event import reconstruction
from lstm_rare_event.detectors.lstm_ae import numpy_engine as engine
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.run import Writer, read_manifest
from lstm_rare_event.cli import cli
from lstm_rare_event.reconstruction import compute_errors
from lstm_rare_event.alarms.thresholds import choose_threshold
from lstm_rare_event.preprocess.windows import Windows, load_split

START = np.datetime64("2024-03-01T00:00:00", "s")
NAT = np.datetime64("NaT", "s")


def windows(last, y, breaks=()):
    """Windows of 3 steps x 2 features, zero except the last step, which is ``last`` in both
    features: under the zero model below the last-step error is last**2 and the mean error
    last**2 / 3. Window k ends at minute 2k; ``breaks`` maps a break minute to its rows."""
    n = len(last)
    X = np.zeros((n, 3, 2), dtype=np.float32)
    X[:, -1, :] = np.asarray(last, dtype=np.float32)[:, None]
    end_time = START + np.arange(n) * np.timedelta64(2, "m")
    event_time = np.full(n, NAT)
    for minute, rows in breaks:
        event_time[list(rows)] = START + np.timedelta64(minute, "m")
    return Windows(X, np.asarray(y, dtype=np.int8), end_time, event_time)


# Validation errors (last step): 0.25 1 2.25 4 [6.25] 9 12.25 [16] 20.25 [25], [] positive.
VALID = windows([0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5], [0, 0, 0, 0, 1, 0, 0, 1, 0, 1],
                breaks=[(30, [4]), (40, [7]), (50, [9])])
# Test: break A at minute 10 (rows 3 and 4, ending at minutes 6 and 8), break B at minute 22
# (rows 9 and 10, ending at 18 and 20). Errors: 1 16 1 [1] [25] 1 1 2.25 1 [20.25] [25] 12.25.
TEST = windows([1, 4, 1, 1, 5, 1, 1, 1.5, 1, 4.5, 5, 3.5], [0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0],
               breaks=[(10, [3, 4]), (22, [9, 10])])


class ZeroModel:
    """Reconstructs every window as zeros, so the error is the window itself squared."""

    def predict(self, X):
        return np.zeros_like(X)


@pytest.fixture
def zero_model(monkeypatch):
    monkeypatch.setattr(reconstruction, "load_model", lambda run_dir, engine="numpy": ZeroModel())


def write_prepared(run, valid=VALID, test=TEST, info=None):
    with Writer(run, step="prepare") as out:
        valid.save(out.path("valid.npz"))
        test.save(out.path("test.npz"))
        out.json("prepare.json", info or {"features": ["a", "b"], "lookback": 3, "interval_minutes": 2.0})


def write_model(run, content=None):
    with Writer(run, step="train", inputs=["prepare.json", "valid.npz"]) as out:
        if content is None:
            out.path("model.npz").write_bytes(b"stand-in: the tests replace the model")
        else:
            content(out.path("model.npz"))


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "run"
    write_prepared(path)
    write_model(path)
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_threshold_max_f_known_answer_and_files(run, zero_model):
    result = invoke("threshold", run, "--rule", "max-f", "--error", "last")
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "threshold.json").read_text())
    # F1 is 2/3 with the top 3 errors flagged (25, 20.25, 16) and with the top 6; the higher wins
    assert saved["value"] == (12.25 + 16) / 2
    assert (saved["rule"], saved["params"], saved["error"], saved["engine"]) == ("max-f", {"beta": 1.0}, "last", "numpy")
    v = saved["validation"]
    assert v["confusion"] == {"tn": 6, "fp": 1, "fn": 1, "tp": 2}
    assert (v["n_windows"], v["n_positive"]) == (10, 3)
    assert v["precision"] == pytest.approx(2 / 3) and v["recall"] == pytest.approx(2 / 3)
    assert v["f1"] == pytest.approx(2 / 3)
    assert v["false_alarms_per_day"] == pytest.approx(1 / (10 * 2 / 1440))
    # seven normal validation windows are far less than a day: no false alarm is allowed
    assert saved["budgets"] == [{"alarms_per_day": 1.0, "value": 20.25}, {"alarms_per_day": 5.0, "value": 20.25}]
    assert (run / "threshold.png").read_bytes()[:4] == b"\x89PNG"
    step = read_manifest(run)["steps"]["threshold"]
    assert sorted(step["inputs"]) == ["model.npz", "prepare.json", "valid.npz"]
    assert "14.12" in result.stdout and "precision" in result.stdout
    assert "threshold 14.125" in result.stderr  # progress goes to stderr, not into the table


def test_threshold_json_output_is_the_saved_file(run, zero_model):
    result = invoke("threshold", run, "--rule", "recall", "--target", "1", "--error", "last", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((run / "threshold.json").read_text())
    assert json.loads(result.stdout)["value"] == (4 + 6.25) / 2  # the lowest positive is 6.25


def test_evaluate_known_confusion_matrix_events_and_budgets(run, zero_model):
    assert invoke("threshold", run, "--rule", "max-f", "--error", "last").exit_code == 0
    result = invoke("evaluate", run, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == json.loads((run / "evaluate.json").read_text())
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
    # the validation budget threshold 20.25 flags only the two 25s: both breaks, lead 2 each
    rows = report["alarm_budgets"]["rows"]
    assert [(r["caught"], r["n_breaks"], r["false_alarms_per_day"], r["mean_lead_minutes"]) for r in rows] == [
        (2, 2, 0.0, 2.0), (2, 2, 0.0, 2.0)]
    assert "validation" in report["alarm_budgets"]["basis"]
    for name in ("error_timeline.png", "roc_pr.png", "error_hist.png"):
        assert (run / name).read_bytes()[:4] == b"\x89PNG"
    assert sorted(read_manifest(run)["steps"]["evaluate"]["inputs"]) == [
        "model.npz", "prepare.json", "test.npz", "threshold.json"]


def test_evaluate_table(run, zero_model):
    assert invoke("threshold", run, "--rule", "max-f", "--error", "last").exit_code == 0
    result = invoke("evaluate", run)
    assert result.exit_code == 0, result.output
    for text in ("TN / FP / FN / TP", "7 / 1 / 1 / 3", "ROC-AUC", "breaks caught", "2 of 2", "Alarm budgets"):
        assert text in result.stdout


@pytest.mark.parametrize("error, false_positives", [("last", 3), ("mean", 2)])
def test_error_definition_chosen_at_threshold_is_used_by_evaluate(run, zero_model, error, false_positives):
    # at 1, row 7 (2.25 last, 0.75 mean) is a false alarm only with the last-step error
    assert invoke("threshold", run, "--rule", "value", "--value", "1", "--error", error).exit_code == 0
    result = invoke("evaluate", run, "--json")
    report = json.loads(result.stdout)
    assert report["threshold"]["error"] == error
    assert report["windows"]["confusion"]["fp"] == false_positives


def test_with_a_real_numpy_model(tmp_path):
    run = tmp_path / "run"
    write_prepared(run)
    arch = Architecture((4,), (4,), "tanh", 3, 2)
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.5, shape).astype(np.float32)
               for _, arrays in engine.weight_layout(arch) for shape in arrays.values()]
    write_model(run, lambda path: engine.save_npz(path, arch, weights))
    result = invoke("threshold", run, "--rule", "max-f", "--error", "mean", "--json")
    assert result.exit_code == 0, result.output
    errors, _ = compute_errors(run, load_split(run, "valid"), "mean")
    assert json.loads(result.stdout)["value"] == choose_threshold("max-f", errors, VALID.y, 2.0)
    assert invoke("evaluate", run).exit_code == 0


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_run_directory(tmp_path):
    assert_one_line_error(invoke("threshold", tmp_path / "nope"), "no such run directory")
    assert_one_line_error(invoke("evaluate", tmp_path / "nope"), "no such run directory")


def test_missing_model_names_train(tmp_path, zero_model):
    write_prepared(tmp_path / "run")
    assert_one_line_error(invoke("threshold", tmp_path / "run"), "missing model.npz", "lstm-rare-event train")
    assert_one_line_error(invoke("threshold", tmp_path / "run", "--engine", "keras"), "missing model.keras")


def test_missing_validation_split_names_prepare(run, zero_model):
    (run / "valid.npz").unlink()
    assert_one_line_error(invoke("threshold", run), "missing valid.npz", "lstm-rare-event prepare")


def test_evaluate_without_threshold_names_the_threshold_step(run, zero_model):
    assert_one_line_error(invoke("evaluate", run), "missing threshold.json", "lstm-rare-event threshold")


def test_threshold_from_other_data_is_refused(run, zero_model):
    assert invoke("threshold", run).exit_code == 0
    write_prepared(run, valid=windows([1, 2, 3], [0, 1, 0]))  # prepare re-run: new validation data
    write_model(run)
    assert_one_line_error(invoke("evaluate", run), "threshold.json", "different valid.npz", "re-run 'threshold'")
    assert not (run / "evaluate.json").exists()


def test_foreign_file_is_refused(run, tmp_path, zero_model):
    windows([1, 2, 3], [0, 1, 0]).save(run / "valid.npz")  # copied in from elsewhere
    assert_one_line_error(invoke("threshold", run), "valid.npz", "sha256 mismatch")


def test_label_rule_without_validation_positives_names_a_working_rule(tmp_path, zero_model):
    run = tmp_path / "run"
    write_prepared(run, valid=windows([1, 2, 3], [0, 0, 0]))
    write_model(run)
    assert_one_line_error(invoke("threshold", run, "--rule", "max-f", "--error", "last"), "--rule alarms-per-day or --rule value")
    assert not (run / "threshold.json").exists()
    assert invoke("threshold", run, "--rule", "alarms-per-day").exit_code == 0


@pytest.mark.parametrize("args, fragment", [
    (["--rule", "value", "--beta", "2"], "--beta does not apply to --rule value"),
    (["--rule", "recall", "--target", "1.5"], "expected a recall in (0, 1]"),
])
def test_bad_rule_options(run, zero_model, args, fragment):
    assert_one_line_error(invoke("threshold", run, *args), fragment)


def test_prepare_json_without_interval(tmp_path, zero_model):
    run = tmp_path / "run"
    write_prepared(run, info={"features": ["a", "b"], "lookback": 3})
    write_model(run)
    assert_one_line_error(invoke("threshold", run), "prepare.json", "interval_minutes")

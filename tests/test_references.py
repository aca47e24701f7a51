"""Reference detectors on hand-made windows and timelines with known answers, and the shared
evaluation path: a reference is thresholded and evaluated exactly as the model is."""

import numpy as np
import pytest

from lstm_rare_event import reconstruction
from lstm_rare_event.steps import evaluate as evaluation
from lstm_rare_event.run import Writer
from lstm_rare_event.errors import UserError
from lstm_rare_event.alarms.metrics import window_metrics
from lstm_rare_event.references import (
    mahalanobis_scores,
    minutes_since_restart,
    reference_run,
    restart_scores,
)
from lstm_rare_event.alarms.thresholds import choose_threshold
from lstm_rare_event.preprocess.windows import Windows, load_split

START = np.datetime64("2024-03-01T00:00:00", "s")
NAT = np.datetime64("NaT", "s")


def at(minutes):
    return START + np.asarray(minutes) * np.timedelta64(1, "m")


def windows(last_rows, y=None, end_minutes=None, event_minutes=None):
    """Windows of 3 steps whose last row is ``last_rows`` (the earlier rows are noise the
    references must ignore)."""
    last = np.asarray(last_rows, dtype=np.float32)
    n = len(last)
    X = np.random.default_rng(0).normal(size=(n, 3, last.shape[1])).astype(np.float32)
    X[:, -1, :] = last
    y = np.zeros(n, dtype=np.int8) if y is None else np.asarray(y, dtype=np.int8)
    end = at(np.arange(n) * 2 if end_minutes is None else end_minutes)
    event = np.full(n, NAT) if event_minutes is None else np.where(y == 1, at(event_minutes), NAT)
    return Windows(X, y, end, event)


def test_mahalanobis_matches_a_hand_computed_distance():
    # Normal last rows (±2, 0) and (0, ±1): mean 0, variances 8/3 and 2/3 (ddof 1), no covariance.
    # The positive window far away must not enter the fit.
    train = windows([[2, 0], [-2, 0], [0, 1], [0, -1], [100, 100]], y=[0, 0, 0, 0, 1])
    scored = mahalanobis_scores(train, windows([[2, 1], [0, 0], [4, 0]]))
    assert scored == pytest.approx([4 / (8 / 3) + 1 / (2 / 3), 0.0, 16 / (8 / 3)])


def test_mahalanobis_of_a_correlated_gaussian_matches_the_2x2_inverse():
    rng = np.random.default_rng(1)
    rows = rng.multivariate_normal([1.0, -2.0], [[2.0, 1.2], [1.2, 1.0]], size=500)
    train = windows(rows)
    mean = rows.astype(np.float32).astype(np.float64).mean(axis=0)
    (a, b), (_, d) = np.cov(rows.astype(np.float32).astype(np.float64), rowvar=False)
    point = np.array([3.0, 0.5])
    dx, dy = point - mean
    by_hand = (d * dx * dx - 2 * b * dx * dy + a * dy * dy) / (a * d - b * b)
    assert mahalanobis_scores(train, windows([point]))[0] == pytest.approx(by_hand, rel=1e-5)


def test_mahalanobis_with_a_constant_sensor_ignores_it_instead_of_failing():
    train = windows([[2, 5], [-2, 5], [0, 5], [0, 5]])  # the second sensor never moves
    scored = mahalanobis_scores(train, windows([[2, 5], [2, 9]]))
    assert np.isfinite(scored).all()
    assert scored == pytest.approx([4 / (8 / 3)] * 2)


def test_mahalanobis_needs_normal_training_windows():
    with pytest.raises(UserError, match="at least 2 normal training windows"):
        mahalanobis_scores(windows([[1, 1]], y=[1]), windows([[0, 0]]))


# A timeline of the original table: a stop after minute 4 (the row at 4 is a break, the
# downtime is cut out), a restart at 10, another stop after 14, a restart at 30.
TIMELINE = at([0, 2, 4, 10, 12, 14, 30, 32, 34])


def test_minutes_since_restart_on_a_timeline_with_gaps():
    assert minutes_since_restart(TIMELINE, 2.0).tolist() == [0, 2, 4, 0, 2, 4, 0, 2, 4]


def test_restart_score_is_highest_right_after_a_restart():
    scores = restart_scores(at([4, 10, 12, 32]), TIMELINE, 2.0)
    assert scores == pytest.approx([1 / 5, 1, 1 / 3, 1 / 3])


def test_restart_score_refuses_window_ends_that_are_not_rows():
    with pytest.raises(UserError, match="not a row time"):
        restart_scores(at([12, 13]), TIMELINE, 2.0)
    with pytest.raises(UserError, match="not a row time"):
        restart_scores(at([40]), TIMELINE, 2.0)


def synthetic_run(path):
    """Three days of 2-minute rows with a restart every 6 hours (the first row counts as one);
    the three rows from each restart on precede a break, 2 minutes after the third. Windows
    are dealt out to the splits in turn, like a random split, so each split sees every break."""
    minutes = np.arange(3 * 720) * 2
    minutes = minutes + (minutes // 360) * 60  # an hour of cut-out downtime every 6 hours
    since = minutes_since_restart(at(minutes), 2.0)
    y = (since <= 4).astype(np.int8)
    event = np.where(y == 1, minutes - since + 6, 0)
    last = np.random.default_rng(2).normal(size=(len(minutes), 2)) + 3 * y[:, None]
    everything = windows(last, y, minutes, event)
    with Writer(path, step="prepare") as out:
        for k, split in enumerate(("train", "valid", "test")):
            everything.subset(np.arange(k, len(minutes), 3)).save(out.path(f"{split}.npz"))
        out.json("prepare.json", {"features": ["a", "b"], "lookback": 3, "interval_minutes": 2.0})
    return at(minutes)


def test_reference_run_thresholds_on_validation_and_evaluates_test_like_the_model(tmp_path):
    run = tmp_path / "run"
    synthetic_run(run)
    train, valid, test = (load_split(run, s) for s in ("train", "valid", "test"))
    report = reference_run(run, "mahalanobis")
    assert report["detector"] == "mahalanobis"
    expected = mahalanobis_scores(train, test)
    np.testing.assert_array_equal(report["test_scores"], expected)
    value = choose_threshold("alarms-per-day", mahalanobis_scores(train, valid), valid.y, 2.0, target=1)
    assert report["threshold"] == {"rule": "alarms-per-day", "params": {"target": 1.0}, "value": value}
    assert report["windows"] == window_metrics(test.y, expected > value, expected)
    assert [row["alarms_per_day"] for row in report["alarm_budgets"]["rows"]] == [1.0, 5.0]
    assert report["events"]["n_breaks"] == int(np.unique(test.event_time[test.y == 1]).size)


def test_restart_reference_finds_breaks_that_follow_restarts(tmp_path):
    run = tmp_path / "run"
    row_times = synthetic_run(run)
    report = reference_run(run, "restart", row_times=row_times)
    assert report["windows"]["roc_auc"] == report["windows"]["pr_auc"] == 1.0
    with pytest.raises(UserError, match="row times"):
        reference_run(run, "restart")
    with pytest.raises(UserError, match="choose one of mahalanobis, restart"):
        reference_run(run, "nearest")


class ZeroModel:
    """Reconstructs every window as zeros: the last-step error is the mean squared last row."""

    def predict(self, X):
        return np.zeros_like(X)


def last_row_error(w):
    return (w.X[:, -1, :].astype(np.float64) ** 2).mean(axis=1)


def test_model_steps_and_report_from_errors_agree(tmp_path, monkeypatch):
    run = tmp_path / "run"
    synthetic_run(run)
    with Writer(run, step="train", inputs=["prepare.json"]) as out:
        out.path("model.npz").write_bytes(b"stand-in: the test replaces the model")
    monkeypatch.setattr(reconstruction, "load_model", lambda run_dir, engine="numpy": ZeroModel())
    evaluation.run_threshold(run, error="last")
    written = evaluation.run_evaluate(run)
    valid, test = load_split(run, "valid"), load_split(run, "test")
    in_memory = evaluation.report_from_errors(last_row_error(valid), valid, last_row_error(test), test, 2.0)
    for key in ("windows", "events", "alarm_budgets"):
        assert in_memory[key] == written[key]
    assert in_memory["threshold"]["value"] == written["threshold"]["value"]

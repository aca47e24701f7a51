"""Time gaps without a calendar: --max-gap, rows that end no window and why, --train-rows."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import SKAB, fails, invoke, ok, skab_like
from lstm_rare_event.preprocess.preprocessor import default_max_gap
from lstm_rare_event.run import Run

COLUMNS = ("--time-column", "datetime", "--label-column", "anomaly", "--drop", "changepoint")
PLAIN = (*COLUMNS, "--shift", "0", "--detrend", "0", "--lookback", "5")
JITTER = (20, 45, 70, 95)  # rows after which the 1-second clock steps 2 seconds


@pytest.mark.parametrize("cadence, expected", [(1, 2), (2, 3), (60, 90), (120, 180)])
def test_default_max_gap_tolerates_a_late_sample_not_a_missing_one(cadence, expected):
    assert default_max_gap(np.timedelta64(cadence, "s")) == np.timedelta64(expected, "s")


def prepared(tmp_path, frame, *options):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    result = invoke("prepare", path, "--out", tmp_path / "run", *PLAIN, *options, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_clock_jitter_is_not_a_time_gap(tmp_path):
    info, _ = prepared(tmp_path, skab_like(120, jitter=JITTER))
    assert info["time_gaps"] == 0 and info["max_gap_minutes"] == 2 / 60
    assert info["coverage"]["all"]["no_window"]["after_gap"] == 0
    assert info["coverage"]["all"]["no_window"]["before_first_window"] == 4


def test_every_step_over_max_gap_is_a_gap_and_its_rows_are_counted_and_warned(tmp_path):
    info, stderr = prepared(tmp_path, skab_like(120, jitter=JITTER), "--max-gap", "1s")
    assert info["time_gaps"] == len(JITTER)
    # Each gap leaves the lookback - 1 rows after it without a window.
    assert info["coverage"]["all"]["no_window"]["after_gap"] == 4 * len(JITTER)
    assert info["coverage"]["all"]["rows"] == 120
    assert "warning" in stderr and "end no window" in stderr and "--max-gap" in stderr


def test_max_gap_in_cadences(tmp_path):
    frame = skab_like(120, jitter=JITTER)
    info, _ = prepared(tmp_path, frame, "--max-gap", "1")
    assert info["time_gaps"] == len(JITTER) and info["max_gap_minutes"] == 1 / 60


def test_a_missing_row_of_two_minute_data_is_still_a_gap(tmp_path):
    frame = skab_like(60)
    times = pd.Timestamp("1999-05-01") + pd.to_timedelta(np.r_[0, np.cumsum(np.where(np.arange(59) == 30, 4, 2))],
                                                         unit="min")
    frame["datetime"] = times.strftime("%Y-%m-%d %H:%M:%S")
    info, _ = prepared(tmp_path, frame)
    assert info["interval_minutes"] == 2 and info["time_gaps"] == 1


def test_max_gap_shorter_than_the_cadence_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    skab_like(60).to_csv(path, index=False)
    fails(2, "prepare", path, "--out", tmp_path / "run", *PLAIN, "--max-gap", "0.5s", fragment="--max-gap")
    fails(2, "prepare", path, "--out", tmp_path / "run", *PLAIN, "--max-gap", "soon", fragment="--max-gap 'soon'")
    assert not (tmp_path / "run").exists()


def test_label_dropped_and_split_boundary_rows_are_counted(tmp_path):
    info, _ = prepared(tmp_path, skab_like(120, anomaly=(50, 51)), "--shift", "2")
    no_window = info["coverage"]["all"]["no_window"]
    assert no_window["label_dropped"] == 1
    assert no_window["split_boundary"] == 2 * 4  # windows across the two cuts
    assert info["coverage"]["all"]["windowed"] == info["windows"]


def test_train_rows_fits_in_the_first_rows_and_judges_every_later_row(tmp_path):
    info, _ = prepared(tmp_path, skab_like(120, anomaly=(80, 100)), "--train-rows", "40", "--fractions", "0.75,0.25,0")
    run = Run(tmp_path / "run")
    train, valid, test = (run.split(name) for name in ("train", "valid", "test"))
    times = pd.to_datetime(skab_like(120)["datetime"]).to_numpy().astype("datetime64[s]")
    assert train.end_time.max() < times[30] <= valid.end_time.min() and valid.end_time.max() == times[39]
    np.testing.assert_array_equal(test.end_time, times[40:])  # every later row, from the first
    assert info["coverage"]["judged"] == {"rows": 80, "windowed": 80, "no_window": {
        "before_first_window": 0, "after_gap": 0, "label_dropped": 0, "split_boundary": 0}}
    assert test.y.sum() == 20


def test_train_rows_must_leave_rows_to_judge(tmp_path):
    path = tmp_path / "data.csv"
    skab_like(60).to_csv(path, index=False)
    fails(2, "prepare", path, "--out", tmp_path / "run", *PLAIN, "--train-rows", "60", fragment="none of its 60 rows")
    fails(2, "prepare", path, "--out", tmp_path / "run", *PLAIN, "--train-rows", "40", "--split", "random",
          fragment="--train-rows")


def test_score_and_evaluate_count_rows_without_a_window(tmp_path):
    frame = skab_like(200, anomaly=(150, 170))
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    ok("prepare", path, "--out", tmp_path / "run", *PLAIN, "--train-rows", "100", "--max-gap", "1s")
    ok("train", tmp_path / "run", "--detector", "mahalanobis")
    ok("threshold", tmp_path / "run", "--rule", "value", "--value", "1")
    report = json.loads(ok("evaluate", tmp_path / "run", "--json").stdout)
    assert report["coverage"] == json.loads((tmp_path / "run" / "prepare.json").read_text())["coverage"]["judged"]

    new = tmp_path / "new.csv"
    skab_like(150, seed=4, jitter=(30, 60, 90, 120)).to_csv(new, index=False)
    result = invoke("score", tmp_path / "run", new, "--out", tmp_path / "scores.csv", "--json")
    assert result.exit_code == 0, result.output
    coverage = json.loads(result.stdout)["coverage"]
    assert coverage["rows"] == 150 and coverage["windowed"] == len(pd.read_csv(tmp_path / "scores.csv"))
    assert coverage["no_window"]["before_first_window"] == 4 and coverage["no_window"]["after_gap"] == 16
    assert "warning" in result.stderr and "20 of the 150 new rows (13.3%) end no window" in result.stderr
    # A few rows (a call from cron) are counted, not warned about.
    few = tmp_path / "few.csv"
    skab_like(40, seed=5, jitter=(20,)).to_csv(few, index=False)
    result = invoke("score", tmp_path / "run", few, "--out", tmp_path / "few.scores.csv")
    assert "8 of the 40 new rows (20.0%) end no window" in result.stderr and f"warning: {few}" not in result.stderr



@pytest.mark.skipif(not (SKAB / "valve1").is_dir(), reason=f"SKAB data not found at {SKAB} (set SKAB_DIR)")
def test_skab_clock_jitter_leaves_every_judged_row_a_window(tmp_path):
    options = ("--sep", ";", *COLUMNS, "--labels", "intervals", "--detrend", "0", "--lookback", "10",
               "--train-rows", "400", "--fractions", "0.75,0.25,0", "--json")
    path = SKAB / "valve1" / "1.csv"
    judged = json.loads(ok("prepare", path, "--out", tmp_path / "run", *options).stdout)["coverage"]["judged"]
    assert judged["rows"] == 745 and judged["windowed"] == 745
    # Every 2-second step taken for a gap (the rule before --max-gap) left 329 of them without one.
    judged = json.loads(ok("prepare", path, "--out", tmp_path / "exact", *options, "--max-gap", "1s").stdout)
    assert judged["coverage"]["judged"]["no_window"]["after_gap"] == 329

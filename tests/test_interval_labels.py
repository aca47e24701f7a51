"""--labels intervals: every labelled row is anomalous, nothing dropped or shifted."""

import json

import numpy as np
import pytest

from conftest import fails, invoke, ok, skab_like
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.labels import interval_labels
from lstm_rare_event.preprocess.preprocessor import PreprocessOptions
from lstm_rare_event.run import Run

COLUMNS = ("--time-column", "datetime", "--label-column", "anomaly", "--drop", "changepoint", "--detrend", "0")


def test_an_interval_is_a_run_of_labelled_rows_kept_as_they_are():
    labels = interval_labels(np.array([0, 1, 1, 0, 1, 0, 1]))
    assert labels.keep.all() and labels.y.tolist() == [0, 1, 1, 0, 1, 0, 1]
    assert labels.event_row.tolist() == [-1, 1, 1, -1, 4, -1, 6]


def test_interval_labels_are_never_shifted():
    assert PreprocessOptions(labels="intervals").shift == 0  # the events' default shift does not apply
    with pytest.raises(UserError, match="--shift 3"):
        PreprocessOptions(labels="intervals", shift=3)
    with pytest.raises(UserError, match="--labels"):
        PreprocessOptions(labels="points")


def prepare(tmp_path, frame, *options):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    result = invoke("prepare", path, "--out", tmp_path / "run", *COLUMNS, "--labels", "intervals", *options, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_prepare_keeps_every_labelled_row_and_labels_a_window_by_its_last_row(tmp_path):
    info, _ = prepare(tmp_path, skab_like(160, anomaly=(120, 140)), "--train-rows", "80")
    assert info["rows_after_shift"] == 160 and info["options"]["labels"] == "intervals"
    run = Run(tmp_path / "run")
    assert run.preprocessor().options.labels == "intervals"
    test = run.split("test")
    assert test.y.sum() == 20  # the windows ending on the 20 anomalous rows, none before them
    assert np.unique(test.event_time[test.y == 1]).size == 1  # one interval, one event
    assert (test.event_time[test.y == 1] == test.end_time[test.y == 1].min()).all()
    assert info["splits"]["test"]["breaks"] == 1


def test_events_still_drop_the_break_row(tmp_path):
    path = tmp_path / "data.csv"
    skab_like(160, anomaly=(120, 140)).to_csv(path, index=False)
    info = json.loads(ok("prepare", path, "--out", tmp_path / "run", *COLUMNS, "--json").stdout)
    assert info["rows_after_shift"] == 140 and info["options"]["labels"] == "events"


def test_anomalous_training_rows_are_a_warning_and_an_all_anomalous_split_is_fitted_on(tmp_path):
    # The anomaly covers every training window (rows 0-59 of --train-rows 80 at 0.75:0.25).
    info, stderr = prepare(tmp_path, skab_like(160, anomaly=(0, 62)), "--train-rows", "80",
                           "--fractions", "0.75,0.25,0")
    assert "warning" in stderr and "anomaly interval" in stderr
    assert info["splits"]["train"]["positive"] == info["splits"]["train"]["windows"]
    result = ok("train", tmp_path / "run", "--detector", "mahalanobis")
    assert "every train window lies in a labelled anomaly interval" in result.stderr


def test_with_events_an_all_positive_training_split_is_still_refused(tmp_path):
    path = tmp_path / "data.csv"
    skab_like(160, anomaly=(0, 62)).to_csv(path, index=False)
    fails(2, "prepare", path, "--out", tmp_path / "run", *COLUMNS, "--shift", "0", "--train-rows", "80",
          "--fractions", "0.75,0.25,0", fragment="no normal (y=0) windows")

"""Any sensor export: named time and label columns, other time formats, unlabelled data,
SKAB's files as they are (`;`-separated, `datetime`, `anomaly`, `changepoint`)."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import SKAB, fails, ok, skab_like
from lstm_rare_event.preprocess.csv import Columns, read_table
from lstm_rare_event.preprocess.preprocessor import PreprocessOptions
from lstm_rare_event.errors import UserError


SKAB_OPTIONS = ("--sep", ";", "--time-column", "datetime", "--label-column", "anomaly", "--drop", "changepoint",
                "--shift", "0", "--detrend", "0", "--lookback", "5")


def test_skab_file_is_read_as_it_is(tmp_path):
    path = tmp_path / "1.csv"
    skab_like().to_csv(path, sep=";", index=False)
    table = read_table(path, drop=["changepoint"], sep=";", columns=Columns("datetime", "anomaly"))
    assert table.features == ["Accelerometer1RMS", "Current", "Volume Flow RateRMS"]
    assert table.y.sum() == 20 and str(table.time[0]) == "2020-03-09T10:14:33"
    info = json.loads(ok("prepare", path, "--out", tmp_path / "run", *SKAB_OPTIONS, "--json").stdout)
    assert info["input"]["breaks"] == 20 and info["input"]["labelled"] is True
    assert info["options"]["time_column"] == "datetime" and info["options"]["label_column"] == "anomaly"


def test_semicolons_with_decimal_points_are_not_taken_for_decimal_commas(tmp_path):
    path = tmp_path / "1.csv"
    skab_like().to_csv(path, sep=";", index=False)
    # Without --sep the hint is the separator alone: SKAB writes 0.0270797, not 0,0270797.
    result = fails(2, "prepare", path, "--out", tmp_path / "run", fragment="try --sep ';'")
    assert "--decimal" not in result.stderr
    # With it, the next thing missing is the time column's name, not a decimal comma.
    fails(2, "prepare", path, "--out", tmp_path / "run", "--sep", ";", fragment="--time-column")


def test_a_named_label_column_must_be_there(tmp_path):
    path = tmp_path / "1.csv"
    skab_like().to_csv(path, sep=";", index=False)
    fails(2, "prepare", path, "--out", tmp_path / "run", "--sep", ";", "--time-column", "datetime",
          "--label-column", "label", fragment="no 'label' label column")


@pytest.mark.parametrize("write, option", [
    (lambda t: ((t - pd.Timestamp(0)) // pd.Timedelta("1s")).astype(str), ()),  # epoch seconds, read as such
    (lambda t: ((t - pd.Timestamp(0)) // pd.Timedelta("1s")).astype(str), ("--time-format", "epoch")),
    (lambda t: t.dt.strftime("%d.%m.%Y %H:%M:%S"), ("--time-format", "%d.%m.%Y %H:%M:%S")),
    (lambda t: t.dt.strftime("%Y-%m-%dT%H:%M:%S"), ()),
])
def test_time_formats(tmp_path, write, option):
    frame = skab_like(40)
    times = pd.to_datetime(frame["datetime"])
    frame["datetime"] = write(pd.Series(times))
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    table = read_table(path, drop=["changepoint"], columns=Columns("datetime", "anomaly", *option[1:]))
    np.testing.assert_array_equal(table.time, times.to_numpy().astype("datetime64[s]"))


def test_times_that_do_not_match_time_format_name_row_column_and_format(tmp_path):
    frame = skab_like(40)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UserError, match=r"row 1, column 'datetime'.*--time-format '%d\.%m\.%Y'"):
        read_table(path, drop=["changepoint"], columns=Columns("datetime", "anomaly", "%d.%m.%Y"))


@pytest.mark.parametrize("given, expected", [
    (dict(time_format="dd.mm.yyyy"), "strftime pattern"),
    (dict(time_column="t", label_column="t"), "both 't'"),
    (dict(time_column="datetime", features=("datetime", "x1")), "is the time column"),
])
def test_column_options_are_checked(given, expected):
    with pytest.raises(UserError, match=expected):
        PreprocessOptions(**given)


@pytest.fixture(scope="module")
def unlabelled_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unlabelled")
    path = folder / "plant.csv"
    skab_like(300).drop(columns=["anomaly"]).to_csv(path, index=False)
    ok("prepare", path, "--out", folder / "run", "--time-column", "datetime", "--drop", "changepoint",
       "--shift", "0", "--detrend", "0")
    ok("train", folder / "run", "--detector", "mahalanobis")
    ok("threshold", folder / "run", "--rule", "alarms-per-day")
    return folder


def test_unlabelled_data_is_prepared_as_normal_rows(unlabelled_run):
    info = json.loads((unlabelled_run / "run" / "prepare.json").read_text())
    assert info["input"]["labelled"] is False and info["input"]["breaks"] == 0
    assert all(split["positive"] == 0 for split in info["splits"].values())


def test_rules_that_need_labels_say_so_on_unlabelled_data(unlabelled_run):
    fails(2, "threshold", unlabelled_run / "run", "--rule", "max-f", fragment="--rule max-f needs labelled breaks")


def test_score_reads_the_columns_the_run_was_prepared_with(unlabelled_run, tmp_path):
    new = tmp_path / "new.csv"
    skab_like(60, seed=3).drop(columns=["anomaly"]).to_csv(new, index=False)
    scores = tmp_path / "scores.csv"
    ok("score", unlabelled_run / "run", new, "--out", scores)
    assert len(pd.read_csv(scores)) == 60 - 4
    # Another export of the same sensors names its time column otherwise: --time-column says which.
    renamed = tmp_path / "renamed.csv"
    pd.read_csv(new).rename(columns={"datetime": "ts"}).to_csv(renamed, index=False)
    fails(2, "score", unlabelled_run / "run", renamed, "--out", tmp_path / "s2.csv", fragment="no 'datetime' column")
    ok("score", unlabelled_run / "run", renamed, "--out", tmp_path / "s2.csv", "--time-column", "ts")
    assert (tmp_path / "s2.csv").read_bytes() == scores.read_bytes()


@pytest.mark.skipif(not (SKAB / "valve1").is_dir(), reason=f"SKAB data not found at {SKAB} (set SKAB_DIR)")
def test_real_skab_file_prepares_as_it_is(tmp_path):
    path = SKAB / "valve1" / "1.csv"
    info = json.loads(ok("prepare", path, "--out", tmp_path / "run", *SKAB_OPTIONS, "--json").stdout)
    assert info["input"]["rows"] == 1145 and info["input"]["breaks"] == 402 and info["n_features"] == 8

"""score: the scores evaluate sees, exact chunking, flags and attribution, exit codes,
refused run directories and bad input, and no TensorFlow or scikit-learn on the way.

The run directories come from the real pipeline (prepare, a tiny train, threshold) on small
synthetic data: one per detector from conftest's ``runs``, and one --allow-gaps run here.
"""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_LSTM, copy_run, fails, invoke, ok

from lstm_rare_event.preprocess.windows import segments, window_ends
from lstm_rare_event.run import Run, rerun
from lstm_rare_event.alarms.sensors import top_sensors
from lstm_rare_event.scoring.output import output_columns
from lstm_rare_event.synthetic import make_sheet_breaks

LOOKBACK, DETREND = 5, 12  # the default lookback; conftest's runs detrend over 12 rows
# Below the lookback (5), below the detrend window (12), at and past the context they need
# together (16 rows), one row in the last chunk, and larger than the file (one chunk).
CHUNKS = [3, 11, 16, 17, 299, 10_000]


@pytest.fixture(scope="module")
def gaps_run(tmp_path_factory, demo_csv):
    """A tiny autoencoder whose windows may span time gaps, unclipped (extreme inputs reach it)."""
    run_dir = tmp_path_factory.mktemp("score") / "gaps"
    ok("prepare", demo_csv, "--out", run_dir, "--detrend", DETREND, "--allow-gaps", "--clip", "0", "-q")
    ok("train", run_dir, "-q", *TINY_LSTM)
    ok("threshold", run_dir, "-q")
    return run_dir


@pytest.fixture(scope="module")
def gaps_mahalanobis(gaps_run, tmp_path_factory):
    """The Mahalanobis detector on gaps_run's (unclipped) windows."""
    run_dir = tmp_path_factory.mktemp("score") / "gaps-mahalanobis"
    ok("train", gaps_run, "--detector", "mahalanobis", "--out", run_dir, "-q")
    ok("threshold", run_dir, "-q")
    return run_dir


@pytest.fixture(scope="module")
def new():
    """The frame behind conftest's new_csv."""
    return make_sheet_breaks(300, seed=2)


@pytest.fixture(scope="module")
def unlabelled_csv(tmp_path_factory, new):
    """new_csv without its label: no row is dropped, every gap-free window is scored."""
    path = tmp_path_factory.mktemp("unlabelled") / "new-no-y.csv"
    new.drop(columns=["y"]).to_csv(path, index=False)
    return path


def pick(runs, gaps_run, which):
    return gaps_run if which == "gaps" else runs[which]


def with_threshold(run_dir, tmp_path, value, *args):
    """A copy of ``run_dir`` re-thresholded at a fixed ``value`` (0 flags every window)."""
    copy = copy_run(run_dir, tmp_path, f"run-{value:g}")
    ok("threshold", copy, "--rule", "value", "--value", value, "-q", *args)
    return copy


def score(run_dir, csv, out, *args):
    return invoke("score", run_dir, csv, "--out", out, *args)


def read_scores(path):
    return pd.read_csv(path, keep_default_na=False)


def test_top_sensors_names_the_largest_shares_first():
    err = np.array([[1.0, 4.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0]])
    names, shares = top_sensors(err, ["a", "b", "c", "d"], k=3)
    assert names[0].tolist() == ["b", "c", "d"]
    np.testing.assert_allclose(shares[0], [0.4, 0.3, 0.2])
    assert shares[1].tolist() == [0, 0, 0]  # reconstructed exactly: no sensor to blame
    assert names[2].tolist()[:2] == ["a", "b"] and shares[2].tolist() == [0.5, 0.5, 0.0]  # ties: file order


def test_top_sensors_with_fewer_features_than_k():
    names, shares = top_sensors(np.array([[1.0, 3.0]]), ["a", "b"], k=3)
    assert names.tolist() == [["b", "a"]] and shares.tolist() == [[0.75, 0.25]]
    assert output_columns(2) == ["time", "score", "flag", "episode", "opened", "sensor_1", "share_1", "sensor_2",
                                 "share_2"]
    assert output_columns(2, has_contributions=False) == ["time", "score", "flag", "episode", "opened"]
    assert output_columns(2, has_contributions=False, held=True) == ["time", "score", "flag", "episode", "opened",
                                                                     "held"]


@pytest.mark.parametrize("which", ["lstm", "mahalanobis", "restart", "gaps"])
def test_score_equals_evaluate_on_the_test_split(runs, gaps_run, demo_csv, tmp_path, which):
    """Scoring the whole labelled training file (break rows dropped, as prepare drops them)
    gives every test window the score evaluate computes from test.npz."""
    run_dir = pick(runs, gaps_run, which)
    out = tmp_path / "scores.csv"
    ok("score", run_dir, demo_csv, "--out", out, "-q")
    scored = read_scores(out)
    run = Run(run_dir)
    test = run.split("test")
    expected = run.detector().score(test)
    times = np.datetime_as_string(test.end_time, unit="s")
    picked = scored[scored.time.isin(set(times))]
    assert len(test) > 50
    assert sorted(picked.time) == sorted(times)  # the same windows, each once
    got = picked.set_index("time").loc[times, "score"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("which", ["lstm", "mahalanobis"])
def test_output_columns_flags_and_attribution(runs, unlabelled_csv, tmp_path, which):
    run_dir = runs[which]
    out = tmp_path / "scores.csv"
    result = score(run_dir, unlabelled_csv, out)
    assert result.exit_code == 0, result.output
    scores = read_scores(out)
    assert list(scores.columns) == ["time", "score", "flag", "episode", "opened", "sensor_1", "share_1", "sensor_2",
                                    "share_2", "sensor_3", "share_3"]
    # One window per row that ends lookback rows without a time gap, at that row's time.
    time = pd.to_datetime(pd.read_csv(unlabelled_csv, usecols=["time"]).time, format="%m/%d/%y %H:%M")
    time = time.to_numpy().astype("datetime64[s]")
    assert (np.diff(time) > np.timedelta64(2, "m")).any()  # the data has gaps to respect
    ends = window_ends(segments(time, np.timedelta64(2, "m")), LOOKBACK)
    assert scores.time.tolist() == np.datetime_as_string(time[ends], unit="s").tolist()
    threshold = Run(run_dir).threshold().value
    assert scores.flag.tolist() == (scores.score > threshold).astype(int).tolist()
    features = set(json.loads((run_dir / "prepare.json").read_text())["features"])
    shares = scores[["share_1", "share_2", "share_3"]].to_numpy()
    for i in (1, 2, 3):
        assert set(scores[f"sensor_{i}"]) <= features
    assert (np.diff(shares, axis=1) <= 0).all()  # largest first
    if which == "lstm":  # squared errors: shares of a sum of non-negative terms
        assert (shares >= 0).all() and (shares.sum(axis=1) <= 1 + 1e-12).all()
    assert (scores[["sensor_1", "sensor_2", "sensor_3"]].nunique(axis=1) == 3).all()
    assert f"scored {len(scores):,} windows (300 rows)" in result.stderr


def test_restart_names_no_sensor(runs, new_csv, tmp_path):
    out = tmp_path / "scores.csv"
    result = score(runs["restart"], new_csv, out, "--json", "-q")
    assert result.exit_code == 0, result.output
    assert list(read_scores(out).columns) == ["time", "score", "flag", "episode", "opened"]
    assert json.loads(result.stdout)["sensors"] == "none: the restart detector uses no sensor"


def test_break_rows_are_dropped_when_the_input_has_labels(runs, new, new_csv, unlabelled_csv, tmp_path):
    labelled, unlabelled = tmp_path / "a.csv", tmp_path / "b.csv"
    ok("score", runs["mahalanobis"], new_csv, "--out", labelled, "-q")
    ok("score", runs["mahalanobis"], unlabelled_csv, "--out", unlabelled, "-q")
    breaks = pd.to_datetime(new.time[new.y == 1], format="%m/%d/%y %H:%M").dt.strftime("%Y-%m-%dT%H:%M:%S")
    assert len(breaks) and not set(breaks) & set(read_scores(labelled).time)
    assert set(breaks) <= set(read_scores(unlabelled).time)


def test_keep_labels_adds_y_and_a_line_per_break(runs, new, new_csv, unlabelled_csv, tmp_path):
    plain, kept = tmp_path / "plain.csv", tmp_path / "kept.csv"
    ok("score", runs["mahalanobis"], new_csv, "--out", plain, "-q")
    ok("score", runs["mahalanobis"], new_csv, "--out", kept, "--keep-labels", "-q")
    without, with_y = read_scores(plain), pd.read_csv(kept)
    assert "y" not in without.columns  # not asked for: scores.csv as before
    assert list(with_y.columns[:6]) == ["time", "score", "flag", "episode", "opened", "y"]
    breaks = pd.to_datetime(new.time[new.y == 1], format="%m/%d/%y %H:%M").dt.strftime("%Y-%m-%dT%H:%M:%S")
    # every break of the input is a line with y 1, no score and no flag; the windows are as without labels
    assert sorted(with_y.time[with_y.y == 1]) == sorted(breaks) and len(breaks) == 2
    assert with_y.score[with_y.y == 1].isna().all() and (with_y.flag[with_y.y == 1] == 0).all()
    windows = with_y[with_y.y == 0].drop(columns="y")
    assert windows.to_csv(index=False) == pd.read_csv(plain).to_csv(index=False)


def test_keep_labels_needs_the_label_column(runs, unlabelled_csv, tmp_path):
    out = tmp_path / "s.csv"
    fails(2, "score", runs["mahalanobis"], unlabelled_csv, "--out", out, "--keep-labels",
          fragment="no label column 'y' to keep (--keep-labels)")
    assert not out.exists()


def test_keep_labels_with_all_rows_labels_every_row(runs, new, new_csv, tmp_path):
    out = tmp_path / "s.csv"
    ok("score", runs["mahalanobis"], new_csv, "--out", out, "--keep-labels", "--all-rows", "-q")
    assert pd.read_csv(out).y.tolist() == new.y.tolist()


@pytest.mark.parametrize("which", ["lstm", "mahalanobis", "restart", "gaps"])
def test_chunked_scoring_equals_unchunked_exactly(runs, gaps_run, new_csv, tmp_path, which):
    run_dir = pick(runs, gaps_run, which)
    whole = tmp_path / "whole.csv"
    assert score(run_dir, new_csv, whole, "--chunk-rows", 1_000_000).exit_code == 0
    expected = whole.read_bytes()
    for chunk in CHUNKS:
        out = tmp_path / f"chunk{chunk}.csv"
        result = score(run_dir, new_csv, out, "--chunk-rows", chunk)
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == expected, f"--chunk-rows {chunk}"


def test_windows_span_gaps_when_the_run_allows_them(gaps_run, unlabelled_csv, tmp_path):
    out = tmp_path / "scores.csv"
    assert score(gaps_run, unlabelled_csv, out).exit_code == 0
    assert len(read_scores(out)) == 300 - LOOKBACK + 1  # every row from the lookback-th on


def test_fail_on_alert_exit_codes(runs, new_csv, tmp_path):
    alarming, quiet = with_threshold(runs["lstm"], tmp_path, 0), with_threshold(runs["lstm"], tmp_path, 1e9)
    out = tmp_path / "scores.csv"
    flagged = score(alarming, new_csv, out, "--fail-on-alert")
    assert flagged.exit_code == 3, flagged.output
    scores = read_scores(out)  # an alert is not an error: the scores are written
    assert scores.flag.eq(1).all()
    assert f"{len(scores)} alarms, first {scores.time.iloc[0]}, last {scores.time.iloc[-1]}" in flagged.stderr
    assert score(alarming, new_csv, out).exit_code == 0  # without --fail-on-alert
    calm = score(quiet, new_csv, out, "--fail-on-alert")
    assert calm.exit_code == 0 and ": 0 alarms" in calm.stderr
    assert read_scores(out).flag.eq(0).all()


def test_quiet_prints_only_alarms_and_json_goes_to_stdout(runs, new_csv, tmp_path):
    alarming, quiet = with_threshold(runs["lstm"], tmp_path, 0), with_threshold(runs["lstm"], tmp_path, 1e9)
    out = tmp_path / "scores.csv"
    calm = score(quiet, new_csv, out, "-q", "--drift-sd", 1000)  # the synthetic sensors drift past 10 SD
    assert calm.exit_code == 0 and calm.stderr == "" and calm.stdout == ""
    loud = score(alarming, new_csv, out, "-q", "--json", "--drift-sd", 1000)
    lines = loud.stderr.strip().splitlines()
    assert lines and all(" alert: alarm episode " in line for line in lines)  # only the alerts with -q
    summary = json.loads(loud.stdout)
    scores = read_scores(out)
    assert summary["rows"] == 300 and summary["windows"] == summary["alarms"] == len(scores)
    assert (summary["first_alarm"], summary["last_alarm"]) == (scores.time.iloc[0], scores.time.iloc[-1])
    assert summary["threshold"] == 0 and summary["detector"] == "lstm" and summary["engine"] == "numpy"


def test_dropped_columns_are_optional(runs, new, tmp_path):
    full, lean = tmp_path / "full.csv", tmp_path / "lean.csv"
    new.to_csv(full, index=False)
    new.drop(columns=["x28", "x61"]).to_csv(lean, index=False)  # the categorical columns prepare drops
    ok("score", runs["lstm"], full, "--out", tmp_path / "a.csv", "-q")
    ok("score", runs["lstm"], lean, "--out", tmp_path / "b.csv", "-q")
    pd.testing.assert_frame_equal(read_scores(tmp_path / "b.csv"), read_scores(tmp_path / "a.csv"))


def test_keras_engine_agrees(runs, new_csv, tmp_path):
    numpy_out, keras_out = tmp_path / "n.csv", tmp_path / "k.csv"
    assert score(runs["lstm"], new_csv, numpy_out).exit_code == 0
    result = score(runs["lstm"], new_csv, keras_out, "--engine", "keras")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(read_scores(keras_out).score, read_scores(numpy_out).score, rtol=1e-4)


def shifted_time(df, row, to_row):
    return df.assign(time=df.time.where(df.index != row, df.time[to_row]))


BAD = {
    "missing_column": (lambda df: df.drop(columns=["x3"]), [], "missing column(s) x3"),
    "other_features": (lambda df: df.assign(x99=1.0), [], "x99 were not among the 59 training features"),
    "too_short": (lambda df: df.head(LOOKBACK - 1), [], "4 data rows, fewer than one window of 5 rows"),
    "header_only": (lambda df: df.head(0), [], "0 data rows"),
    # row numbers are the file's, in a later chunk
    "non_numeric": (lambda df: df.astype({"x2": object}).assign(x2=lambda d: d.x2.where(d.index != 249, "abc")),
                    ["--chunk-rows", 100], "row 250, column 'x2'"),
    "not_increasing_across_chunks": (lambda df: shifted_time(df, 200, 199), ["--chunk-rows", 100],
                                     "row 201, column 'time'"),
    "bad_time": (lambda df: df.assign(time=df.time.where(df.index != 2, "yesterday")), [], "row 3, column 'time'"),
    "bad_label": (lambda df: df.assign(y=df.y.where(df.index != 9, 7)), [], "row 10, column 'y'"),
    "too_large": (lambda df: df.assign(x5=df.x5.where(df.index != 99, 1e300)), [], "row 100, column 'x5'"),
    # accepted by the reader, but infinite once scaled to float32 when the run does not clip
    "overflow": (lambda df: df.assign(x5=df.x5.where(df.index != 99, 1e100)), [], "is not finite"),
    "overflow_mahalanobis": (lambda df: df.assign(x5=df.x5.where(df.index != 99, 1e100)), [], "is not finite"),
    "no_gapless_window": (lambda df: df.head(20).assign(
        time=[f"5/1/99 {h}:00" for h in range(20)]), [], "no window to score"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(runs, gaps_run, gaps_mahalanobis, new, tmp_path, case):
    change, args, expected = BAD[case]
    # gaps_run is unclipped
    run_dir = {"overflow": gaps_run, "overflow_mahalanobis": gaps_mahalanobis}.get(case, runs["lstm"])
    csv = tmp_path / "in" / "bad.csv"
    csv.parent.mkdir()
    change(new).to_csv(csv, index=False)
    out = tmp_path / "out" / "scores.csv"
    result = score(run_dir, csv, out, *args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and str(csv) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists() and not any(out.parent.iterdir())  # not even the temporary file


def test_failed_score_keeps_the_earlier_output(runs, new_csv, tmp_path):
    out = tmp_path / "scores.csv"
    assert score(runs["lstm"], new_csv, out).exit_code == 0
    before = out.read_bytes()
    missing = tmp_path / "missing.csv"
    result = score(runs["lstm"], missing, out)
    assert result.exit_code == 2 and "file not found" in result.stderr
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


@pytest.mark.parametrize("name, expected", [("detector/detector.json", "train"), ("threshold.json", "threshold"),
                                            ("preprocessor/scaler.npz", "prepare")])
def test_run_dir_without_a_step_names_it(runs, new_csv, tmp_path, name, expected):
    run_dir = copy_run(runs["lstm"], tmp_path)
    (run_dir / name).unlink()
    fails(2, "score", run_dir, new_csv, "--out", tmp_path / "scores.csv",
          fragment=f"{run_dir / name}: missing; {rerun(expected, run_dir)}")
    assert not (tmp_path / "scores.csv").exists()


def test_no_run_dir(new_csv, tmp_path):
    fails(2, "score", tmp_path / "nowhere", new_csv, "--out", tmp_path / "scores.csv",
          fragment="no such run directory")


def test_untrained_run_is_refused(demo_csv, new_csv, tmp_path):
    ok("prepare", demo_csv, "--out", tmp_path / "run", "-q")
    fails(2, "score", tmp_path / "run", new_csv, "--out", tmp_path / "scores.csv",
          fragment="no train results; re-run `lstm-rare-event train")
    assert not (tmp_path / "scores.csv").exists()


@pytest.mark.parametrize("name", ["detector/state.npz", "preprocessor/scaler.npz", "threshold.json"])
def test_files_from_another_run_are_refused(runs, gaps_run, new_csv, tmp_path, name):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    other = runs["mahalanobis"] if name == "threshold.json" else gaps_run
    if name == "threshold.json":
        other = with_threshold(other, tmp_path, 0.5)
    elif name == "detector/state.npz":
        other = copy_run(gaps_run, tmp_path, "other")
        ok("train", other, "--detector", "mahalanobis", "-q")
    shutil.copy(other / name, run_dir / name)
    result = fails(2, "score", run_dir, new_csv, "--out", tmp_path / "scores.csv", fragment=str(run_dir / name))
    assert "different run" in result.stderr
    assert not (tmp_path / "scores.csv").exists()


def test_results_made_from_other_data_are_refused(runs, demo_csv, new_csv, tmp_path):
    """Re-preparing a run keeps its detector, but the manifest knows it was made from other data."""
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    ok("prepare", demo_csv, "--out", run_dir, "--detrend", "0", "-q")
    fails(2, "score", run_dir, new_csv, "--out", tmp_path / "scores.csv",
          fragment="were made from a different")


def test_out_directory_partials_of_live_processes_are_kept(runs, new_csv, tmp_path):
    live = tmp_path / f".scores.csv.{os.getppid()}.partial"
    live.write_text("another score is writing this")
    ok("score", runs["restart"], new_csv, "--out", tmp_path / "scores.csv", "-q")
    assert live.exists()


@pytest.mark.parametrize("which", ["lstm", "mahalanobis"])
def test_no_tensorflow_or_sklearn_is_imported(runs, new_csv, tmp_path, heavy_imports, which):
    assert heavy_imports("import lstm_rare_event.cli") == []
    code = f"""
from lstm_rare_event.cli import cli
try:
    cli(["score", {str(runs[which])!r}, {str(new_csv)!r}, "--out", {str(tmp_path / "s.csv")!r}, "-q"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
"""
    assert heavy_imports(code) == []

"""score: the same windows as prepare, exact chunking, flags and attribution, exit codes,
refused run directories and bad input, and no TensorFlow or scikit-learn on the way.

The run directories come from the real pipeline (prepare, a tiny train, threshold) on small
synthetic data, built once per module.
"""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from lstm_rare_event.cli import cli
from lstm_rare_event.preprocess.csv import read_table
from lstm_rare_event.reconstruction import compute_errors
from lstm_rare_event.steps.score import output_columns, top_sensors
from lstm_rare_event.synthetic import make_sheet_breaks, write_csv
from lstm_rare_event.preprocess.windows import load_split, segments, window_ends

LOOKBACK, DETREND = 5, 12
TINY = ["--encoder", "4,2", "--epochs", "2", "--batch-size", "64"]
# Below the lookback (5), below the detrend window (12), at and past the context they need
# together (16 rows), one row in the last chunk, the whole file in one chunk, larger than the file.
CHUNKS = [2, 3, 5, 11, 16, 17, 64, 299, 300, 10_000]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def build_run(run_dir, csv, *prepare_args):
    ok("prepare", csv, "--out", run_dir, "--lookback", LOOKBACK, "--detrend", DETREND, *prepare_args)
    ok("train", run_dir, *TINY)
    ok("threshold", run_dir, "-q")
    return run_dir


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Training and new CSVs, a run with detrending and one whose windows may span gaps.

    ``--shift 0`` keeps every row in prepare, so its windows can be compared with score's.
    The first run does not clip, so that extreme inputs reach the model; the other clips.
    """
    base = tmp_path_factory.mktemp("score")
    train_csv, new_csv = base / "train.csv", base / "new.csv"
    write_csv(make_sheet_breaks(600, seed=1), train_csv)
    new = make_sheet_breaks(300, seed=2)
    write_csv(new, new_csv)
    return SimpleNamespace(
        train_csv=train_csv,
        new_csv=new_csv,
        new=new,
        run=build_run(base / "run", train_csv, "--shift", "0", "--clip", "0"),
        gaps_run=build_run(base / "gaps", train_csv, "--allow-gaps"),
    )


def copy_run(run_dir, tmp_path, name="run"):
    return Path(shutil.copytree(run_dir, tmp_path / name))


def with_threshold(run_dir, tmp_path, value, *args):
    """A copy of ``run_dir`` re-thresholded at a fixed ``value`` (0 flags every window)."""
    copy = copy_run(run_dir, tmp_path, f"run-{value:g}")
    ok("threshold", copy, "--rule", "value", "--value", value, "-q", *args)
    return copy


def score(run_dir, csv, out, *args):
    return run("score", run_dir, csv, "--out", out, *args)


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
    assert output_columns(2) == ["time", "error", "flag", "sensor_1", "share_1", "sensor_2", "share_2"]


def test_output_columns_flags_and_attribution(made, tmp_path):
    out = tmp_path / "scores.csv"
    result = score(made.run, made.new_csv, out)
    assert result.exit_code == 0, result.output
    scores = read_scores(out)
    assert list(scores.columns) == ["time", "error", "flag", "sensor_1", "share_1", "sensor_2", "share_2",
                                    "sensor_3", "share_3"]
    # One window per row that ends lookback rows without a time gap, at that row's time.
    table = read_table(made.new_csv, labels="ignore")
    info = json.loads((made.run / "prepare.json").read_text())
    ends = window_ends(segments(table.time, np.timedelta64(2, "m")), LOOKBACK)
    assert (np.diff(table.time) > np.timedelta64(2, "m")).any()  # the data has gaps to respect
    assert scores.time.tolist() == np.datetime_as_string(table.time[ends], unit="s").tolist()
    threshold = json.loads((made.run / "threshold.json").read_text())["value"]
    assert scores.flag.tolist() == (scores.error > threshold).astype(int).tolist()
    features = set(info["features"])
    shares = scores[["share_1", "share_2", "share_3"]].to_numpy()
    for i in (1, 2, 3):
        assert set(scores[f"sensor_{i}"]) <= features
    assert (shares >= 0).all() and (np.diff(shares, axis=1) <= 0).all()
    assert (shares.sum(axis=1) <= 1 + 1e-12).all()
    assert (scores[["sensor_1", "sensor_2", "sensor_3"]].nunique(axis=1) == 3).all()
    assert f"scored {len(scores):,} windows (300 rows)" in result.stderr


@pytest.mark.parametrize("mode", ["last", "mean"])
def test_score_windows_are_prepares_windows(made, tmp_path, mode):
    """Scoring the training file reproduces the errors of prepare's validation windows: same
    columns, detrending, scaler and window rule, and the saved error definition."""
    run_dir = with_threshold(made.run, tmp_path, 1.0, "--error", mode)
    out = tmp_path / "scores.csv"
    assert score(run_dir, made.train_csv, out).exit_code == 0
    scores = read_scores(out).set_index("time")
    valid = load_split(run_dir, "valid")
    expected, _ = compute_errors(run_dir, valid, mode)
    got = scores.loc[np.datetime_as_string(valid.end_time, unit="s"), "error"].to_numpy()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("which", ["run", "gaps_run"])
def test_chunked_scoring_equals_unchunked_exactly(made, tmp_path, which):
    run_dir = getattr(made, which)
    whole = tmp_path / "whole.csv"
    assert score(run_dir, made.new_csv, whole, "--chunk-rows", 1_000_000).exit_code == 0
    expected = whole.read_bytes()
    for chunk in CHUNKS:
        out = tmp_path / f"chunk{chunk}.csv"
        result = score(run_dir, made.new_csv, out, "--chunk-rows", chunk)
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == expected, f"--chunk-rows {chunk}"


def test_windows_span_gaps_when_the_run_allows_them(made, tmp_path):
    out = tmp_path / "scores.csv"
    assert score(made.gaps_run, made.new_csv, out).exit_code == 0
    assert len(read_scores(out)) == 300 - LOOKBACK + 1  # every row from the lookback-th on


def test_fail_on_alert_exit_codes(made, tmp_path):
    alarming, quiet = with_threshold(made.run, tmp_path, 0), with_threshold(made.run, tmp_path, 1e9)
    out = tmp_path / "scores.csv"
    flagged = score(alarming, made.new_csv, out, "--fail-on-alert")
    assert flagged.exit_code == 3, flagged.output
    scores = read_scores(out)  # an alert is not an error: the scores are written
    assert scores.flag.eq(1).all()
    assert f"{len(scores)} alarms, first {scores.time.iloc[0]}, last {scores.time.iloc[-1]}" in flagged.stderr
    assert score(alarming, made.new_csv, out).exit_code == 0  # without --fail-on-alert
    calm = score(quiet, made.new_csv, out, "--fail-on-alert")
    assert calm.exit_code == 0 and ": 0 alarms" in calm.stderr
    assert read_scores(out).flag.eq(0).all()


def test_quiet_prints_only_alarms_and_json_goes_to_stdout(made, tmp_path):
    alarming, quiet = with_threshold(made.run, tmp_path, 0), with_threshold(made.run, tmp_path, 1e9)
    out = tmp_path / "scores.csv"
    calm = score(quiet, made.new_csv, out, "-q")
    assert calm.exit_code == 0 and calm.stderr == "" and calm.stdout == ""
    loud = score(alarming, made.new_csv, out, "-q", "--json")
    assert len(loud.stderr.strip().splitlines()) == 1 and "alarms" in loud.stderr
    summary = json.loads(loud.stdout)
    scores = read_scores(out)
    assert summary["rows"] == 300 and summary["windows"] == summary["alarms"] == len(scores)
    assert (summary["first_alarm"], summary["last_alarm"]) == (scores.time.iloc[0], scores.time.iloc[-1])
    assert summary["threshold"] == 0 and summary["error"] == "mean" and summary["engine"] == "numpy"


def test_labels_and_dropped_columns_are_optional(made, tmp_path):
    with_y, without = tmp_path / "a.csv", tmp_path / "b.csv"
    assert score(made.run, made.new_csv, with_y).exit_code == 0
    csv = tmp_path / "no-y.csv"
    made.new.drop(columns=["y", "x28", "x61"]).to_csv(csv, index=False)
    result = score(made.run, csv, without)
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(read_scores(without), read_scores(with_y))


def test_keras_engine_agrees(made, tmp_path):
    numpy_out, keras_out = tmp_path / "n.csv", tmp_path / "k.csv"
    assert score(made.run, made.new_csv, numpy_out).exit_code == 0
    result = score(made.run, made.new_csv, keras_out, "--engine", "keras")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(read_scores(keras_out).error, read_scores(numpy_out).error, rtol=1e-4)


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
    "overflow": (lambda df: df.assign(x5=df.x5.where(df.index != 99, 1e300)), [],
                 "has a reconstruction error that is not finite"),
    "no_gapless_window": (lambda df: df.head(20).assign(
        time=[f"5/1/99 {h}:00" for h in range(20)]), [], "no window to score"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(made, tmp_path, case):
    change, args, expected = BAD[case]
    csv = tmp_path / "in" / "bad.csv"
    csv.parent.mkdir()
    change(made.new).to_csv(csv, index=False)
    out = tmp_path / "out" / "scores.csv"
    result = score(made.run, csv, out, *args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and str(csv) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists() and not any(out.parent.iterdir())  # not even the temporary file


def test_failed_score_keeps_the_earlier_output(made, tmp_path):
    out = tmp_path / "scores.csv"
    assert score(made.run, made.new_csv, out).exit_code == 0
    before = out.read_bytes()
    missing = tmp_path / "missing.csv"
    result = score(made.run, missing, out)
    assert result.exit_code == 2 and "file not found" in result.stderr
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


@pytest.mark.parametrize("name, expected", [("model.npz", "train"), ("threshold.json", "threshold"),
                                            ("scaler.npz", "prepare")])
def test_run_dir_without_a_step_names_it(made, tmp_path, name, expected):
    run_dir = copy_run(made.run, tmp_path)
    (run_dir / name).unlink()
    result = score(run_dir, made.new_csv, tmp_path / "scores.csv")
    assert result.exit_code == 2 and f"missing {name}" in result.stderr
    assert f"lstm-rare-event {expected}" in result.stderr
    assert not (tmp_path / "scores.csv").exists()


def test_no_run_dir(made, tmp_path):
    result = score(tmp_path / "nowhere", made.new_csv, tmp_path / "scores.csv")
    assert result.exit_code == 2 and "no such run directory" in result.stderr


@pytest.mark.parametrize("name", ["model.npz", "scaler.npz", "threshold.json"])
def test_files_from_another_run_are_refused(made, tmp_path, name):
    run_dir = copy_run(made.run, tmp_path)
    other = made.gaps_run if name != "threshold.json" else with_threshold(made.run, tmp_path, 0.5)
    shutil.copy(other / name, run_dir / name)
    result = score(run_dir, made.new_csv, tmp_path / "scores.csv")
    assert result.exit_code == 2, result.output
    assert str(run_dir / name) in result.stderr and "different run" in result.stderr
    assert not (tmp_path / "scores.csv").exists()


def test_no_tensorflow_or_sklearn_is_imported(made, tmp_path, heavy_imports):
    assert heavy_imports("import lstm_rare_event.cli") == []
    code = f"""
from lstm_rare_event.cli import cli
try:
    cli(["score", {str(made.run)!r}, {str(made.new_csv)!r}, "--out", {str(tmp_path / "s.csv")!r}, "-q"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
"""
    assert heavy_imports(code) == []

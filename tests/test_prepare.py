"""prepare: label shift, windows, gaps, splits, scaling, detrending, and the CLI."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from conftest import invoke, ok
from lstm_rare_event.preprocess.detrend import detrend
from lstm_rare_event.preprocess.labels import shift_labels
from lstm_rare_event.preprocess.windows import segments, stack, window_ends
from lstm_rare_event.run import Run
from lstm_rare_event.steps.prepare import PrepareOptions, prepare


def frame(n=40, breaks=(), gaps=(), features=3, start="1999-05-01 00:00"):
    """A small table in the real file's format: row i has x1 = i, so windows are easy to read;
    the other sensors are not proportional to x1."""
    step = np.full(n, 2)
    step[0] = 0
    for row in gaps:
        step[row] = 60
    times = pd.Timestamp(start) + pd.to_timedelta(np.cumsum(step), unit="min")
    data = {"time": [f"{t.month}/{t.day}/{t:%y} {t.hour}:{t:%M}" for t in times], "y": np.zeros(n, dtype=int)}
    data["y"][list(breaks)] = 1
    for j in range(1, features + 1):
        data[f"x{j}"] = np.arange(n) * j + (0.5 * (np.arange(n) % 3) if j > 1 else 0.0)
    return pd.DataFrame(data)


def write(df, path, **kwargs):
    df.to_csv(path, index=False, **kwargs)
    return path


def files_of(folder):
    """Every file under ``folder`` (the preprocessor is a folder), by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_shift_labels_marks_rows_before_break_and_removes_it():
    y = np.array([0, 0, 0, 0, 1, 0, 0, 1, 0])
    shifted = shift_labels(y, 2)
    assert shifted.keep.tolist() == [True, True, True, True, False, True, True, False, True]
    # kept rows 0, 1, 2, 3, 5, 6, 8: rows 2 and 3 precede the break at 4, rows 5 and 6 the one at 7
    assert shifted.y.tolist() == [0, 0, 1, 1, 1, 1, 0]
    assert shifted.event_row.tolist() == [-1, -1, 4, 4, 7, 7, -1]


def test_shift_zero_keeps_labels_and_rows():
    y = np.array([0, 1, 0])
    shifted = shift_labels(y, 0)
    assert shifted.keep.all() and shifted.y.tolist() == [0, 1, 0]
    assert shifted.event_row.tolist() == [-1, 1, -1]


def test_nearest_break_owns_a_row_when_breaks_are_close():
    shifted = shift_labels(np.array([0, 0, 1, 0, 1]), 3)
    # row 3 is 1 before the break at 4 and 1 after the one at 2: it belongs to 4
    assert shifted.event_row.tolist() == [2, 2, 4]


def test_windows_hold_exact_rows():
    values = np.arange(20, dtype=float).reshape(10, 2)
    ends = np.array([4, 9])
    X = stack(values, ends, lookback=3)
    assert X.shape == (2, 3, 2) and X.dtype == np.float32
    np.testing.assert_array_equal(X[0], values[2:5])
    np.testing.assert_array_equal(X[1], values[7:10])


def test_windows_never_span_a_gap():
    time = np.datetime64("1999-05-01T00:00") + np.array([0, 2, 4, 6, 60, 62, 64, 66, 68], dtype="timedelta64[m]")
    seg = segments(time.astype("datetime64[s]"), np.timedelta64(2, "m"))
    assert seg.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert window_ends(seg, 3).tolist() == [2, 3, 6, 7, 8]


def test_prepare_recipe_windows_span_gaps_and_start_two_rows_late(tmp_path):
    path = write(frame(30, gaps=[10]), tmp_path / "d.csv")
    gaps = prepare(path, PrepareOptions(split="random", allow_gaps=True, lookback=5))
    plain = prepare(path, PrepareOptions(split="random", lookback=5))
    assert gaps.info["windows"] == 30 - 5 - 1  # the recipe's count: len - lookback - 1
    assert plain.info["windows"] == (10 - 4) + (20 - 4)  # two segments, no window across the gap


def test_prepare_window_contents_and_labels(tmp_path):
    path = write(frame(40, breaks=[20]), tmp_path / "d.csv")
    prepared = prepare(path, PrepareOptions(split="time", fractions=(0.5, 0.25, 0.25), lookback=3, shift=2,
                                            detrend=0, clip=0))
    train = prepared.splits["train"]
    # undo the scaling to read x1, which is the row number
    rows = np.round(train.X[..., 0] * prepared.preprocessor.scale_[0] + prepared.preprocessor.mean_[0]).astype(int)
    np.testing.assert_array_equal(rows[0], [0, 1, 2])
    np.testing.assert_array_equal(rows[-1], [17, 18, 19])
    assert len(train) == 20 - 2  # rows 0..19 of the 39 kept rows, lookback 3
    valid = prepared.splits["valid"]
    positives = valid.end_time[valid.y == 1]
    # rows 18 and 19 precede the break at row 20 (40 min): they end windows labelled 1
    assert prepared.splits["train"].y.sum() == 2
    assert positives.size == 0
    assert set(train.event_time[train.y == 1].astype(str)) == {"1999-05-01T00:40:00"}


def test_time_split_shares_no_row(tmp_path):
    path = write(frame(100, breaks=[30, 70]), tmp_path / "d.csv")
    prepared = prepare(path, PrepareOptions(split="time", lookback=5))
    spans = []
    for name in ("train", "valid", "test"):
        w = prepared.splits[name]
        first = w.end_time - np.timedelta64(4 * 2, "m")
        spans.append((first.min(), w.end_time.max()))
    assert spans[0][1] < spans[1][0] and spans[1][1] < spans[2][0]


def test_random_split_reproduces_sklearn_shares(tmp_path):
    path = write(frame(200, breaks=[50, 120]), tmp_path / "d.csv")
    a = prepare(path, PrepareOptions(split="random", seed=5))
    b = prepare(path, PrepareOptions(split="random", seed=5))
    c = prepare(path, PrepareOptions(split="random", seed=6))
    n = a.info["windows"]
    assert len(a.splits["test"]) == int(np.ceil(0.2 * n))
    np.testing.assert_array_equal(a.splits["test"].end_time, b.splits["test"].end_time)
    assert not np.array_equal(a.splits["test"].end_time, c.splits["test"].end_time)


def test_scaler_fitted_on_normal_training_rows_only(tmp_path):
    df = frame(60, breaks=[20])
    df.loc[18:19, "x1"] = 1e6  # the two pre-break rows: labelled 1, must not move the scaler
    df.loc[50:, "x2"] = 1e6  # test period: must not move the scaler either
    path = write(df, tmp_path / "d.csv")
    prepared = prepare(path, PrepareOptions(split="time", lookback=3))
    assert prepared.preprocessor.mean_[0] < 100 and prepared.preprocessor.mean_[1] < 100
    train = prepared.splits["train"]
    normal_last = train.X[train.y == 0, -1, :]
    np.testing.assert_allclose(normal_last.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(normal_last.std(axis=0), 1, atol=1e-4)


def test_detrend_uses_past_rows_only():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 2))
    seg = np.zeros(50, dtype=int)
    base = detrend(values, seg, 5)
    changed = values.copy()
    changed[30:] += 100  # the future changes; rows before 30 must not notice
    np.testing.assert_array_equal(detrend(changed, seg, 5)[:30], base[:30])
    # row 10: its own value minus the median of rows 5..9
    assert base[10, 0] == pytest.approx(values[10, 0] - np.median(values[5:10, 0]))


def test_detrend_restarts_after_a_gap():
    values = np.arange(10, dtype=float)[:, None]
    seg = np.array([0] * 5 + [1] * 5)
    out = detrend(values, seg, 3)
    assert out[5, 0] == 0  # a new segment has no past: no baseline from before the gap
    assert out[6, 0] == 1  # 6 - median(5)


def test_prepare_reads_gzip_crlf_bom_iso_and_any_column_order(tmp_path):
    df = frame(30, breaks=[15])
    plain = prepare(write(df, tmp_path / "a.csv"), PrepareOptions())
    iso = df.copy()
    iso["time"] = pd.to_datetime(iso["time"], format="%m/%d/%y %H:%M").dt.strftime("%Y-%m-%dT%H:%M:%S")
    iso = iso[["x3", "y", "time", "x2", "x1"]].assign(extra="note")
    text = iso.to_csv(index=False, lineterminator="\r\n")
    gz = tmp_path / "b.csv.gz"
    gz.write_bytes(gzip.compress(("\ufeff" + text).encode("utf-8")))
    other = prepare(gz, PrepareOptions(features=("x1", "x2", "x3")))
    for name in ("train", "valid", "test"):
        np.testing.assert_allclose(other.splits[name].X, plain.splits[name].X, rtol=1e-6)
        np.testing.assert_array_equal(other.splits[name].end_time, plain.splits[name].end_time)


def test_prepare_cli_writes_run_and_prints_summary(tmp_path):
    path = write(frame(60, breaks=[30]), tmp_path / "d.csv")
    result = ok("prepare", path, "--out", tmp_path / "run", "--json")
    info = json.loads(result.stdout)
    assert info["n_features"] == 3 and info["features"] == ["x1", "x2", "x3"]
    assert info["input"]["rows"] == 60
    written = json.loads((tmp_path / "run" / "prepare.json").read_text())
    assert written == info
    assert len(Run(tmp_path / "run").split("test")) == info["splits"]["test"]["windows"]
    table = invoke("prepare", path, "--out", tmp_path / "run", "-q")
    assert table.exit_code == 0 and "train" in table.stdout and table.stderr == ""


def test_no_break_is_prepared_with_a_warning(tmp_path):
    path = write(frame(40), tmp_path / "d.csv")
    result = ok("prepare", path, "--out", tmp_path / "run")
    assert "no break" in result.stderr


BAD = {
    "missing_column": (lambda df: df.drop(columns=["x2"]), "--features", "x1,x2", "missing column(s) x2"),
    "no_label": (lambda df: df.drop(columns=["y"]), "--label-column", "label", "no 'label' label column"),
    "bad_label": (lambda df: df.assign(y=df.y.where(df.index != 7, 2)), None, None, "row 8, column 'y'"),
    "non_numeric": (lambda df: df.astype({"x2": object}).assign(x2=lambda d: d.x2.where(d.index != 3, "abc")),
                    None, None, "row 4, column 'x2'"),
    "nan": (lambda df: df.assign(x3=df.x3.where(df.index != 5, np.nan)), None, None, "row 6, column 'x3'"),
    "inf": (lambda df: df.assign(x1=df.x1.where(df.index != 9, np.inf)), None, None, "row 10, column 'x1'"),
    "not_increasing": (lambda df: df.assign(time=df.time.where(df.index != 12, df.time[11])), None, None,
                       "row 13, column 'time'"),
    "bad_time": (lambda df: df.assign(time=df.time.where(df.index != 2, "yesterday")), None, None,
                 "row 3, column 'time'"),
    "too_short": (lambda df: df.head(3), None, None, "fewer than one window"),
    "single_row": (lambda df: df.head(1), "--lookback", "1", "cannot tell the sampling interval"),
    "header_only": (lambda df: df.head(0), None, None, "no data rows"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    change, option, value, expected = BAD[case]
    path = write(change(frame(30, breaks=[20])), tmp_path / "bad.csv")
    result = invoke("prepare", path, "--out", tmp_path / "run", *([option, value] if option else []))
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and str(path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # no staging left behind


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        (b"\x00\x01\x02\xff\xfe binary", "not a UTF-8 text CSV"),
        (gzip.compress(frame(3000).to_csv(index=False).encode())[:5000], "truncated or corrupt"),
    ],
)
def test_unreadable_files(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    result = invoke("prepare", path, "--out", tmp_path / "run")
    assert result.exit_code == 2 and expected in result.stderr
    assert not (tmp_path / "run").exists()


def test_failed_prepare_keeps_the_earlier_run(tmp_path):
    good = write(frame(40, breaks=[20]), tmp_path / "good.csv")
    bad = write(frame(40).assign(y=lambda d: d.y.where(d.index != 7, 2)), tmp_path / "bad.csv")
    ok("prepare", good, "--out", tmp_path / "run")
    before = files_of(tmp_path / "run")
    assert invoke("prepare", bad, "--out", tmp_path / "run").exit_code == 2
    assert files_of(tmp_path / "run") == before


def test_bad_options_are_usage_errors(tmp_path):
    path = write(frame(40), tmp_path / "d.csv")
    for args, expected in [
        (["--fractions", "0.5,0.5"], "--fractions"),
        (["--lookback", "0"], "--lookback"),
        (["--fractions", "a,b,c"], "expected numbers"),
    ]:
        result = invoke("prepare", path, "--out", tmp_path / "r", *args)
        assert result.exit_code == 2 and expected in result.stderr, result.output

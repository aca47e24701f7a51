"""Issues 12 and 20: the throughput work changes no byte (the fast CSV writers against pandas'
to_csv, the top sensors, the detrending and the windows split over threads)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ok

from lstm_rare_event.scoring.output import Lines, to_csv


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    time = np.datetime64("2020-01-01T00:00:00") + np.arange(n).astype("timedelta64[m]")
    return pd.DataFrame({
        "time": np.datetime_as_string(time, unit="s"),
        "score": rng.lognormal(size=n) * 10.0 ** rng.integers(-20, 20, size=n),
        "flag": rng.integers(0, 2, n).astype(np.int8),
        "episode": rng.integers(0, 10**12, n),
        "sensor_1": np.array(["x1", "x22", "x3"], dtype=object)[rng.integers(0, 3, n)],
        "share_1": np.where(rng.random(n) < 0.1, 0.0, rng.random(n)),
        "share_2": np.concatenate([[-0.0, 1e16, 1e-5, 1e-4, 5e-324], -rng.random(n - 5) * 1e-300]),
        # every double of the positional range is as likely, whole numbers and the range's ends too
        "share_3": np.concatenate([[1e-4, np.nextafter(1e-4, 0), np.nextafter(1e16, 0), 1e15 + 0.5, 3.0, 2.0**52 + 0.5],
                                   np.exp(rng.uniform(np.log(1e-4), np.log(1e16), n - 6))]),
    })


def _pandas(frame):
    return frame.to_csv(header=False, index=False, lineterminator="\n")


@pytest.mark.parametrize("writer", ["arrow", "python", "no pyarrow"])
@pytest.mark.parametrize("change", ["none", "nan", "inf", "comma", "quote", "offset", "float32", "empty"])
def test_to_csv_writes_the_bytes_of_pandas(change, writer, monkeypatch):
    from lstm_rare_event.scoring import output

    if writer == "arrow":
        pytest.importorskip("pyarrow")
    monkeypatch.setattr(output, "ARROW_LINES", 1 if writer != "python" else 10**9)
    if writer == "no pyarrow":
        monkeypatch.setitem(sys.modules, "pyarrow", None)
        monkeypatch.setitem(sys.modules, "pyarrow.compute", None)
    frame = _frame(2000)
    if change == "nan":
        frame.loc[3, "score"] = np.nan
    elif change == "inf":
        frame.loc[3, "share_1"] = np.inf
    elif change in ("comma", "quote"):
        frame["sensor_1"] = np.array(["x,1" if change == "comma" else 'x"1', "y"], dtype=object)[np.arange(2000) % 2]
    elif change == "offset":
        frame["time"] = (frame["time"] + "+02:00").astype(object)
    elif change == "float32":
        frame["score"] = frame["score"].astype(np.float32)
    elif change == "empty":
        frame = frame.head(0)
    lines = Lines({name: frame[name].to_numpy() for name in frame.columns})  # what the engine hands the writer
    assert to_csv(lines) == _pandas(frame)
    if writer == "arrow" and change in ("none", "offset"):
        assert output._arrow_csv(lines) is not None  # not a fallback


@pytest.mark.parametrize("mode", ["mean", "last"])
@pytest.mark.parametrize("n", [0, 1, 1023, 1025, 3000])
def test_feature_errors_in_blocks_gives_the_bytes_of_one_pass(mode, n):
    from lstm_rare_event.detectors.lstm_ae.detector import feature_errors

    rng = np.random.default_rng(n)
    X = (rng.normal(size=(n, 5, 7)) * 10.0 ** rng.integers(-8, 8, size=(n, 5, 7))).astype(np.float32)
    X_hat = (X + rng.normal(size=X.shape)).astype(np.float32)
    steps = slice(-1, None) if mode == "last" else slice(None)
    one_pass = ((X_hat[:, steps].astype(np.float64) - X[:, steps].astype(np.float64)) ** 2).mean(axis=1)
    assert feature_errors(X, X_hat, mode).tobytes() == one_pass.tobytes()


def test_detrend_split_over_threads_gives_the_bytes_of_one_column_at_a_time():
    from lstm_rare_event.preprocess.detrend import BLOCK, detrend, trailing_median

    rng = np.random.default_rng(4)
    n = 2 * BLOCK + 17  # long enough to be split over the threads
    values = np.round(rng.normal(size=(n, 7)) * 1e3) / 7
    segment = np.cumsum(rng.random(n) < 0.01)
    one_by_one = np.column_stack([trailing_median(values[:, [j]], segment, 30)[:, 0] for j in range(7)])
    assert detrend(values, segment, 30).tobytes() == (values - one_by_one).tobytes()


@pytest.mark.parametrize("detector", ["lstm", "mahalanobis"])
def test_windows_scored_in_batches_of_1_7_or_all_on_threads_give_the_same_bytes(runs, detector, monkeypatch):
    from lstm_rare_event.preprocess.windows import Windows
    from lstm_rare_event.scoring import engine
    from lstm_rare_event.scoring.engine import load_scorer

    scorer = load_scorer(runs[detector])
    pre = scorer.preprocessor
    n = 300
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, pre.lookback, len(pre.features_))).astype(np.float32)
    time = np.datetime64("2020-01-01T00:00") + np.arange(n).astype("timedelta64[m]")
    windows = Windows(X, np.zeros(n, dtype=np.int8), time, np.full(n, np.datetime64("NaT"), "datetime64[s]"), time)

    def in_batches(size):
        pieces = [engine._explain(scorer.detector, windows.subset(slice(s, s + size)), pre.features_)
                  for s in range(0, n, size)]
        return [np.concatenate(column).tobytes() for column in zip(*pieces)]

    monkeypatch.setattr(engine, "EXPLAIN_MINIMUM", 1)  # every call split over the threads
    monkeypatch.setattr("lstm_rare_event.parallel.WORKERS", 2)
    split = [column.tobytes() for column in engine._explain(scorer.detector, windows, pre.features_)]
    assert in_batches(1) == in_batches(7) == split == in_batches(n)


def test_ahead_keeps_the_order_and_raises_after_the_items_before_the_error():
    from lstm_rare_event.parallel import ahead

    def items():
        yield from range(5)
        raise ValueError("row 6")

    seen = []
    with pytest.raises(ValueError, match="row 6"):
        for item in ahead(items()):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
    assert list(ahead(iter([]))) == []


@pytest.mark.parametrize("values", ["random", "ties", "ties, nan and -inf"])
def test_top_sensors_by_argmax_are_those_of_a_stable_descending_sort(values):
    from lstm_rare_event.alarms.sensors import top_sensors

    rng = np.random.default_rng(7)
    pool = {"random": None, "ties": [0.0, -0.0, 1.0, 2.5, np.inf], "ties, nan and -inf": [0.0, 1.0, np.nan, -np.inf]}[values]
    contributions = rng.random((500, 9)) if pool is None else rng.choice(pool, size=(500, 9))
    features = [f"x{i}" for i in range(9)]
    with np.errstate(invalid="ignore"):  # the pools' inf / inf shares: only the order is checked here
        names, _ = top_sensors(contributions, features)
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :3]
    assert (names == np.asarray(features, dtype=object)[order]).all()


@pytest.mark.parametrize("detector", ["lstm", "mahalanobis"])
def test_score_writes_the_same_bytes_with_pyarrow_formatting_every_chunk(runs, new_csv, tmp_path, monkeypatch,
                                                                         detector):
    """Issue 20: the whole output, each chunk's lines formatted by pyarrow (from one line on), is
    what the Python writer gives, whatever the chunks; --all-rows adds empty scores (NaN), which
    only the other writers write."""
    pytest.importorskip("pyarrow")
    from lstm_rare_event.scoring import output

    monkeypatch.setattr(output, "ARROW_LINES", 10**9)
    expected = tmp_path / "python.csv"
    ok("score", runs[detector], new_csv, "--out", expected, "-q")
    monkeypatch.setattr(output, "ARROW_LINES", 1)
    for chunk in (7, 64, 1_000_000):
        out = tmp_path / f"arrow-{chunk}.csv"
        ok("score", runs[detector], new_csv, "--out", out, "--chunk-rows", chunk, "-q")
        assert out.read_bytes() == expected.read_bytes(), chunk
    all_rows = tmp_path / "all-rows.csv"
    ok("score", runs[detector], new_csv, "--out", all_rows, "--all-rows", "-q")
    monkeypatch.setattr(output, "ARROW_LINES", 10**9)
    ok("score", runs[detector], new_csv, "--out", expected, "--all-rows", "-q")
    assert all_rows.read_bytes() == expected.read_bytes()

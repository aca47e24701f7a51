"""Issue 12's throughput work changes no byte: the fast CSV writer against pandas' to_csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstm_rare_event.steps.stream import to_csv


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
    })


def _pandas(frame):
    return frame.to_csv(header=False, index=False, lineterminator="\n")


@pytest.mark.parametrize("change", ["none", "nan", "inf", "comma", "quote", "offset", "float32", "empty"])
def test_to_csv_writes_the_bytes_of_pandas(change):
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
    assert to_csv(frame) == _pandas(frame)


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

"""backtest: folds cut in time, thresholds from validation only, pooled episodes and verdicts,
resuming after a kill, refusing other arguments, warm starts."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_LSTM, fails, invoke, ok

from lstm_rare_event.errors import UserError
from lstm_rare_event.steps import backtest as bt

WALK = ("--start", "50%", "--train-window", "1d", "--valid-window", "12h", "--every", "12h", "--detrend", "0",
        "--horizon", "30", "--replicates", "50", "-q")


def minutes(*values):
    return np.datetime64("2020-01-01T00:00", "s") + np.array(values) * np.timedelta64(60, "s")


def test_folds_train_validate_and_test_in_time_order():
    end = minutes(*range(0, 600, 10))  # a window every 10 minutes for 10 hours
    options = bt.BacktestOptions(start="50%", every="2h", train_window="2h", valid_window="1h")
    plan = bt.plan_folds(end, end, np.timedelta64(600, "s"), options)
    assert plan.cuts[0] == end[30] and len(plan.test) == 3  # cuts at 5 h, 7 h, 9 h
    for k in range(3):
        cut = plan.cuts[k]
        assert (end[plan.valid[k]] < cut).all() and (end[plan.valid[k]] >= cut - np.timedelta64(1, "h")).all()
        assert (end[plan.train[k]] < end[plan.valid[k]].min()).all()
        assert end[plan.train[k]].min() >= cut - np.timedelta64(3, "h")
        assert (end[plan.test[k]] >= cut).all() and (end[plan.test[k]] < plan.cuts[k + 1]).all()
    # every window from the first cut on is scored exactly once
    scored = np.concatenate(plan.test)
    assert scored.tolist() == list(range(30, 60))


@pytest.mark.parametrize("start, fragment", [("140%", "between 0% and 100%"), ("yesterday", "a date"),
                                             ("2099-01-01", "after the last window")])
def test_bad_start(start, fragment):
    end = minutes(*range(0, 600, 10))
    with pytest.raises(UserError, match=fragment):
        bt.plan_folds(end, end, np.timedelta64(600, "s"), bt.BacktestOptions(start=start))


def test_backtest_writes_results_figures_and_verdicts(history, tmp_path):
    out = tmp_path / "bt"
    result = ok("backtest", history, "--out", out, "--detector", "mahalanobis,restart", *WALK)
    report = json.loads((out / "backtest.json").read_text())
    assert set(report["detectors"]) == {"mahalanobis", "restart"}
    assert report["folds"] >= 3 and report["scored"]["breaks"] >= 5
    for name, d in report["detectors"].items():
        assert d["episodes"]["horizon_minutes"] == 30
        assert d["budget"]["promised"] == 1
        assert len(d["folds"]) == report["folds"] - len(report["skipped_folds"])
        assert report["verdicts"][name].startswith(f"{name}: warned ")
    diff = report["bootstrap"]["differences"][0]
    assert {diff["a"], diff["b"]} == {"mahalanobis", "restart"}
    for figure in ("backtest_timeline.png", "backtest_folds.png", "backtest_warning.png"):
        assert (out / figure).stat().st_size > 10_000
    rows = (out / "backtest.csv").read_text().splitlines()
    assert rows[0] == "time,fold,detector,score,threshold,flag,episode,label,break_time"
    assert len(rows) - 1 == 2 * report["scored"]["windows"]
    assert "mahalanobis: warned" in result.stdout and "restart: warned" in result.stdout
    # Episodes numbered as score's CSV numbers them: from 1 through the folds, 0 when not flagged.
    table = pd.read_csv(out / "backtest.csv")
    for name, windows in table.groupby("detector"):
        assert ((windows.episode == 0) == (windows.flag == 0)).all()
        numbers = windows.episode[windows.flag == 1]
        assert numbers.iloc[0] == 1 and numbers.diff().dropna().isin([0, 1]).all()
        assert numbers.nunique() == report["detectors"][name]["episodes"]["episodes"]


def test_each_fold_threshold_comes_from_its_validation_window(history, tmp_path, monkeypatch):
    """The test rows of a fold never reach its threshold rule: scores of the test windows
    are replaced by huge values and the threshold must not move."""
    seen = []
    real = bt.thresholds.choose_threshold

    def spy(rule, scored, **params):
        seen.append(scored.end_time.max())
        return real(rule, scored, **params)

    monkeypatch.setattr(bt.thresholds, "choose_threshold", spy)
    bt.backtest(history, tmp_path / "bt", bt.BacktestOptions(start="50%", every="12h", train_window="1d",
                                                             valid_window="12h", detectors=("mahalanobis",),
                                                             replicates=20),
                bt.PreprocessOptions(detrend=0), {}, bt.ThresholdOptions(horizon=30))
    report = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    cuts = [np.datetime64(f["cut"]) for f in report["detectors"]["mahalanobis"]["folds"]]
    assert len(seen) == len(cuts)
    assert all(last < cut for last, cut in zip(seen, cuts))


def test_a_killed_backtest_resumes_from_its_last_finished_fold(history, tmp_path, monkeypatch):
    out = tmp_path / "bt"
    calls = []
    real = bt._fold

    def dies_at_third(*args):
        calls.append(args[8])  # k
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(bt, "_fold", dies_at_third)
    args = ("backtest", history, "--out", out, "--detector", "mahalanobis", *WALK)
    assert invoke(*args).exit_code == 130
    assert not (out / "backtest.json").exists()
    first = list(calls)
    calls.clear()
    monkeypatch.setattr(bt, "_fold", lambda *a: (calls.append(a[8]), real(*a))[1])
    ok(*args)
    assert calls[0] == first[-1] and not set(calls) & set(first[:-1])  # finished folds are not redone
    # The resumed fold's rows are scored with every earlier row as context: as in one run.
    monkeypatch.setattr(bt, "_fold", real)
    ok("backtest", history, "--out", tmp_path / "whole", "--detector", "mahalanobis", *WALK)
    assert (out / "backtest.csv").read_bytes() == (tmp_path / "whole" / "backtest.csv").read_bytes()


@pytest.mark.parametrize("edit", ["scores edited", "file truncated", "detector truncated"])
def test_a_fold_file_changed_since_backtest_wrote_it_is_recomputed(history, tmp_path, edit):
    """A resumed backtest reuses only the fold files it wrote: one edited (its scores changed)
    or cut short (a full disk, a copy; the scores or the kept detector that the next fold
    starts from) is recomputed, with a warning naming it, and the pooled results are those of
    a backtest that never saw it."""
    out = tmp_path / "bt"
    args = ("backtest", history, "--out", out, "--detector", "mahalanobis", *WALK)
    ok(*args)
    expected = (out / "backtest.csv").read_bytes()
    fold = out / "folds" / "mahalanobis" / "001.npz"
    if edit == "scores edited":
        with np.load(fold) as data:
            arrays = {key: data[key] for key in data.files}
        arrays["score"] = arrays["score"][::-1] * 2
        with open(fold, "wb") as handle:
            np.savez(handle, **arrays)
    elif edit == "file truncated":
        fold.write_bytes(fold.read_bytes()[: fold.stat().st_size // 2])
    else:
        kept = fold.with_suffix("") / "detector" / "state.npz"
        kept.write_bytes(kept.read_bytes()[: kept.stat().st_size // 2])
    result = ok(*args)
    assert (out / "backtest.csv").read_bytes() == expected
    changed = f"{fold.with_suffix('')}: differs from the fold run backtest wrote" if edit == "detector truncated" \
        else f"{fold}: differs from the fold file backtest wrote; recomputed"
    assert changed in result.stderr


def test_other_arguments_into_the_same_folder_are_refused(history, tmp_path):
    out = tmp_path / "bt"
    ok("backtest", history, "--out", out, "--detector", "restart", *WALK)
    fails(2, "backtest", history, "--out", out, "--detector", "restart", *WALK, "--merge", "10",
          fragment="other arguments")


def test_autoencoder_folds_start_from_the_previous_weights(history, tmp_path):
    out = tmp_path / "bt"
    ok("backtest", history, "--out", out, "--detector", "lstm", *WALK, "--start", "90%", "--every", "6h", *TINY_LSTM)
    saved = sorted(p.name for p in (out / "folds" / "lstm").iterdir() if p.is_dir())
    assert len(saved) >= 2  # each fold's network is kept for the next fold's warm start


def test_lstm_options_need_the_lstm_detector(history, tmp_path):
    fails(2, "backtest", history, "--out", tmp_path / "bt", "--detector", "restart", "--epochs", "3", *WALK,
          fragment="--epochs applies to the lstm detector")


def test_backtest_of_interval_labels_reports_intervals_and_chance(history, tmp_path):
    preprocess = bt.PreprocessOptions(detrend=0, labels="intervals")
    report = bt.backtest(history, tmp_path / "bt", bt.BacktestOptions(start="50%", every="12h", train_window="1d",
                                                                      valid_window="12h", detectors=("mahalanobis",),
                                                                      replicates=20),
                         preprocess, {}, bt.ThresholdOptions(horizon=30))
    d = report["detectors"]["mahalanobis"]
    assert d["intervals"]["n_intervals"] > 0 and 0 <= d["intervals"]["far"] <= 1
    assert 0 <= d["warned_chance"]["alarm_on_share"] <= 1
    assert report["bootstrap"]["blocks"]["breaks"] == d["intervals"]["n_intervals"]  # resampled by interval
    text = bt.backtest_text(report)
    assert "intervals detected" in text and "anomaly intervals" in report["verdicts"]["mahalanobis"]


@pytest.mark.parametrize("smooth", [(), ("--smooth", "5")])
def test_a_fold_scores_its_rows_as_score_history_does(history, tmp_path, smooth):
    """The backtest scores a fold through score's engine: its run directory, given every
    earlier row as --history, scores the fold's rows as backtest.csv has them (smoothed alike
    with --smooth, which the report records only when on)."""
    out = tmp_path / "bt"
    ok("backtest", history, "--out", out, "--detector", "mahalanobis", *WALK, *smooth)
    report = json.loads((out / "backtest.json").read_text())
    assert report["threshold"].get("smooth") == (5 if smooth else None)
    folds = report["detectors"]["mahalanobis"]["folds"]
    fold, cut, until = folds[1]["fold"], np.datetime64(folds[1]["cut"]), np.datetime64(folds[2]["cut"])
    header, *body = history.read_text().splitlines()
    times = pd.to_datetime(pd.read_csv(history).time, format="%m/%d/%y %H:%M").to_numpy().astype("datetime64[s]")
    (tmp_path / "before.csv").write_text("\n".join([header, *np.array(body)[times < cut]]) + "\n")
    (tmp_path / "fold.csv").write_text("\n".join([header, *np.array(body)[(times >= cut) & (times < until)]]) + "\n")
    ok("score", out / "folds" / "mahalanobis" / f"{fold - 1:03d}", tmp_path / "fold.csv", "--history",
       tmp_path / "before.csv", "--out", tmp_path / "scores.csv", "-q")
    scored = pd.read_csv(tmp_path / "scores.csv")
    expected = pd.read_csv(out / "backtest.csv").query("fold == @fold")
    assert len(scored) == len(expected) > 10
    assert scored.time.tolist() == expected.time.tolist()
    np.testing.assert_allclose(scored.score, expected.score, rtol=0, atol=1e-9)
    assert scored.flag.tolist() == expected.flag.tolist()

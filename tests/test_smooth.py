"""threshold --smooth K: the alarm rule's trailing median of the score over K windows of a
gap-free segment. The threshold is chosen on smoothed scores; score (batch, chunked, stateful),
evaluate and the Python API smooth alike; without it every output is what it was before.

The smoothing is checked against pandas' rolling median (the study's, bench/skab_study.py), not
against the code under test. The runs are conftest's (the Mahalanobis run, thresholded again).
"""

import io
import json
import random

import numpy as np
import pandas as pd
import pytest
from conftest import copy_run, fails, invoke, ok

from lstm_rare_event import Pipeline
from lstm_rare_event.preprocess import detrend
from lstm_rare_event.alarms.rule import trailing_median
from lstm_rare_event.errors import UserError
from lstm_rare_event.run import Run
from lstm_rare_event.synthetic import make_sheet_breaks

K = 7
PREV_ROWS, DAY_ROWS, GAP_AT = 60, 240, 150


def rolling_median(scores, segment, k: int) -> np.ndarray:
    """The reference: pandas' trailing median of each segment, fewer values at its start."""
    frame = pd.DataFrame({"s": np.asarray(scores, dtype=float), "g": np.asarray(segment)})
    rolled = frame.groupby("g", sort=False)["s"].rolling(k, min_periods=1).median()
    return rolled.reset_index(level=0, drop=True).sort_index().to_numpy()


def segments_of(times: pd.Series, gap=pd.Timedelta(minutes=3)) -> np.ndarray:
    """A segment id per row: a new one after every step longer than ``gap`` (the run's max gap)."""
    t = pd.to_datetime(times)
    return np.cumsum(np.append(True, np.diff(t.to_numpy()) > gap.to_timedelta64()))


@pytest.mark.parametrize("k", [2, 3, 30])
def test_trailing_median_is_pandas_rolling_median_restarting_at_each_segment(k, monkeypatch):
    rng = np.random.default_rng(k)
    scores = rng.gamma(2.0, size=500)
    segment = np.repeat([10, 20, 30, 40], [1, 200, 4, 295])
    expected = rolling_median(scores, segment, k)
    assert np.array_equal(trailing_median(scores, segment, k), expected)
    monkeypatch.setattr(detrend, "GROUP", 2 * k - 2)  # a window longer than GROUP / 2: one sorted at a time
    assert np.array_equal(trailing_median(scores, segment, k), expected)
    assert trailing_median(scores, segment, k)[201] == scores[201]  # a segment's first window: itself
    assert np.array_equal(trailing_median(scores, segment, 1), scores)


@pytest.fixture(scope="module")
def plant():
    """History and a day of rows as text, the day with a 3-hour hole after row GAP_AT."""
    frame = make_sheet_breaks(PREV_ROWS + DAY_ROWS, seed=5).astype(str)
    prev, day = frame.iloc[:PREV_ROWS].reset_index(drop=True), frame.iloc[PREV_ROWS:].reset_index(drop=True)
    t = pd.to_datetime(pd.concat([prev.time, day.time]), format="%m/%d/%y %H:%M").reset_index(drop=True)
    t[PREV_ROWS + GAP_AT:] += pd.Timedelta(hours=3)
    stamps = t.dt.strftime("%Y-%m-%dT%H:%M:%S")
    prev["time"], day["time"] = stamps[:PREV_ROWS].to_numpy(), stamps[PREV_ROWS:].to_numpy()
    return prev, day


@pytest.fixture(scope="module")
def smoothed(runs, tmp_path_factory):
    """The Mahalanobis run thresholded on scores smoothed over K windows."""
    run_dir = copy_run(runs["mahalanobis"], tmp_path_factory.mktemp("smoothed"))
    ok("threshold", run_dir, "--smooth", K, "-q")
    return run_dir


def write(frame, path):
    frame.to_csv(path, index=False)
    return path


def test_a_score_is_the_median_of_its_segment_s_last_k_raw_scores_history_included(runs, smoothed, plant, tmp_path):
    prev, day = plant
    history, today = write(prev, tmp_path / "prev.csv"), write(day, tmp_path / "day.csv")
    ok("score", runs["mahalanobis"], write(pd.concat([prev, day]), tmp_path / "all.csv"), "--out", tmp_path / "raw.csv",
       "-q")
    raw = pd.read_csv(tmp_path / "raw.csv")
    expected = raw.assign(score=rolling_median(raw.score, segments_of(raw.time), K))
    for chunk in ("100000", "17"):  # one piece, and pieces of 17 rows
        out = tmp_path / f"s{chunk}.csv"
        ok("score", smoothed, today, "--history", history, "--out", out, "--chunk-rows", chunk, "-q")
        got = pd.read_csv(out)
        want = expected[expected.time.isin(got.time)].reset_index(drop=True)
        assert len(got) > 200 and got.time.tolist() == want.time.tolist()
        np.testing.assert_allclose(got.score, want.score, rtol=1e-12)
        assert np.array_equal(got.flag, (got.score > Run(smoothed).threshold().value).astype(int))
    assert not np.allclose(got.score, raw[raw.time.isin(got.time)].score)  # smoothed, not raw
    # The first window after the hole starts a segment: its own raw score, no median of the rows before.
    first = got.time[pd.to_datetime(got.time).diff() > pd.Timedelta(hours=1)].index[0]
    assert got.score[first] == raw.set_index("time").score[got.time[first]]


def test_stateful_calls_across_a_hole_equal_one_batch_call(smoothed, plant, tmp_path):
    prev, day = plant
    history = write(prev, tmp_path / "prev.csv")
    ok("score", smoothed, write(day, tmp_path / "day.csv"), "--history", history, "--out", tmp_path / "batch.csv",
       "-q")
    state, out, piece = tmp_path / "state.json", tmp_path / "scores.csv", tmp_path / "piece.csv"
    rng, at = random.Random(7), 0
    while at < len(day):  # calls of 1 to 2K rows: the K - 1 windows before come from the state
        end = min(at + rng.randint(1, 2 * K), len(day))
        result = invoke("score", smoothed, write(day.iloc[at:end], piece), "--state", state, "--history", history,
                        "--out", out, "-q")
        assert result.exit_code in (0, 3), result.output
        at = end
    assert out.read_bytes() == (tmp_path / "batch.csv").read_bytes()


def test_the_threshold_is_chosen_on_the_smoothed_training_and_validation_scores(runs, tmp_path):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    ok("threshold", run_dir, "--rule", "quantile", "--q", "1", "--on", "fit", "--smooth", K, "-q")
    run = Run(run_dir)
    detector = run.detector()
    train, valid = run.split("train"), run.split("valid")
    raw = np.concatenate([detector.score(train), detector.score(valid)])
    segment = np.concatenate([train.segment_start, valid.segment_start])
    normal = np.concatenate([train.y, valid.y]) == 0
    chosen = json.loads((run_dir / "threshold.json").read_text())
    assert chosen["smooth"] == K and chosen["value"] == rolling_median(raw, segment, K)[normal].max()
    assert chosen["value"] < raw[normal].max()  # the median rides over the largest single score


def test_evaluate_smooths_the_test_scores_after_the_validation_windows(smoothed, tmp_path):
    run_dir = copy_run(smoothed, tmp_path)
    ok("evaluate", run_dir, "-q")
    report = json.loads((run_dir / "evaluate.json").read_text())
    run = Run(run_dir)
    detector, value = run.detector(), run.threshold().value
    valid, test = run.split("valid"), run.split("test")
    raw = np.concatenate([detector.score(valid), detector.score(test)])
    segment = np.concatenate([valid.segment_start, test.segment_start])
    flags = rolling_median(raw, segment, K)[len(valid):] > value
    y = np.asarray(test.y)
    assert report["threshold"]["smooth"] == K
    assert report["windows"]["confusion"] == {"tn": int(np.sum(~flags & (y == 0))), "fp": int(np.sum(flags & (y == 0))),
                                              "fn": int(np.sum(~flags & (y == 1))), "tp": int(np.sum(flags & (y == 1)))}


OUTPUTS = ("scores.csv", "threshold.json", "evaluate.json")


def unsmoothed(tmp_path, *off) -> dict:
    """The bytes of score, threshold and evaluate on a Mahalanobis run thresholded with ``off``."""
    data, run_dir = tmp_path / "d.csv", tmp_path / "run"
    ok("demo-data", "--out", data, "--rows", 800, "--seed", 4, "-q")
    ok("prepare", data, "--out", run_dir, "--detrend", 12, "-q")
    ok("train", run_dir, "--detector", "mahalanobis", "-q")
    ok("threshold", run_dir, "--rule", "quantile", "--q", "0.99", "--on", "fit", "-q", *off)
    ok("score", run_dir, data, "--out", tmp_path / "scores.csv", "--all-rows", "-q")
    ok("evaluate", run_dir, "-q")
    return {name: (tmp_path / name if name == "scores.csv" else run_dir / name).read_bytes() for name in OUTPUTS}


@pytest.fixture(scope="module")
def without_option(tmp_path_factory):
    """Outputs with no --smooth, and the raw scores they must come from (the detector's own)."""
    tmp_path = tmp_path_factory.mktemp("without")
    outputs = unsmoothed(tmp_path)
    run = Run(tmp_path / "run")
    detector = run.detector()
    raw = {split: (detector.score(run.split(split)), np.asarray(run.split(split).y))
           for split in ("train", "valid", "test")}
    return outputs, raw


def test_without_the_option_nothing_is_smoothed(without_option):
    outputs, raw = without_option
    chosen = json.loads(outputs["threshold.json"])
    normal = np.concatenate([s[y == 0] for s, y in (raw["train"], raw["valid"])])
    assert "smooth" not in chosen and chosen["value"] == np.quantile(normal, 0.99)
    test_scores, y = raw["test"]
    flags = test_scores > chosen["value"]
    assert json.loads(outputs["evaluate.json"])["windows"]["confusion"] == {
        "tn": int(np.sum(~flags & (y == 0))), "fp": int(np.sum(flags & (y == 0))),
        "fn": int(np.sum(~flags & (y == 1))), "tp": int(np.sum(flags & (y == 1)))}
    scored = pd.read_csv(io.BytesIO(outputs["scores.csv"]))["score"].dropna().to_numpy()
    assert np.allclose(np.sort(scored)[-5:], np.sort(np.concatenate([s for s, _ in raw.values()]))[-5:], rtol=1e-6)


@pytest.mark.parametrize("off", [("--smooth", "1"), ("--smooth", "0")])
def test_smoothing_off_writes_the_bytes_of_no_option(off, without_option, tmp_path):
    assert unsmoothed(tmp_path, *off) == without_option[0]


@pytest.mark.parametrize("value", ["-1", "2.5", "x"])
def test_a_bad_smooth_is_one_line_exit_2(runs, value, tmp_path):
    result = fails(2, "threshold", copy_run(runs["mahalanobis"], tmp_path), "--smooth", value, "-q",
                   fragment="--smooth")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("saved", [0, 2.5, "7"])
def test_a_bad_smooth_in_threshold_json_is_one_line_exit_2(smoothed, new_csv, saved, tmp_path):
    run_dir = copy_run(smoothed, tmp_path)
    path = run_dir / "threshold.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "smooth": saved}))
    result = invoke("score", run_dir, new_csv, "--out", tmp_path / "s.csv", "-q")
    assert result.exit_code == 2 and "threshold.json" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_the_python_pipeline_smooths_as_the_command_line(demo_csv, new_csv, tmp_path):
    with pytest.raises(UserError, match="--smooth"):
        Pipeline(detector="mahalanobis", smooth=-2)
    frame = pd.read_csv(demo_csv)
    pipe = Pipeline(detector="mahalanobis", detrend=12, smooth=K, rule="quantile", rule_params={"q": 1, "on": "fit"})
    pipe.fit(frame)
    plain = Pipeline(detector="mahalanobis", detrend=12, rule="quantile", rule_params={"q": 1, "on": "fit"}).fit(frame)
    assert pipe.rule.smooth == K and pipe.rule.value < plain.rule.value
    pipe.save(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "threshold.json").read_text())["smooth"] == K
    ok("score", tmp_path / "run", new_csv, "--out", tmp_path / "cli.csv", "-q")
    pipe.score(pd.read_csv(new_csv)).to_csv(tmp_path / "python.csv", index=False, lineterminator="\n")
    assert (tmp_path / "python.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
    loaded = Pipeline.load(tmp_path / "run")
    assert loaded.rule.smooth == K and loaded.threshold.smooth == K

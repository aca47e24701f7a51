"""threshold --pool: the threshold chosen on several nightly runs' validation days at once."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import fails, invoke, ok, write_days
from lstm_rare_event.alarms import evaluation
from lstm_rare_event.alarms.thresholds import ThresholdOptions, alarms_per_day
from lstm_rare_event.preprocess.windows import Windows
from lstm_rare_event.run import Run
from lstm_rare_event.steps.threshold import resolved_options
from lstm_rare_event.synthetic import make_sheet_breaks


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Three nightly runs as examples/Makefile makes them (the last 3 day files, the last day
    to validate on), one night apart, in runs/ by date: (new run, the two before it)."""
    base = tmp_path_factory.mktemp("pool")
    days = write_days(make_sheet_breaks(720 * 6, seed=5), base / "incoming")
    made = []
    for night in range(3):
        run_dir = base / "runs" / f"1999-05-0{5 + night}T013000"
        ok("prepare", *days[:4 + night], "--out", run_dir, "--last", "3d", "--fractions", "0.67,0.33,0", "-q")
        ok("train", run_dir, "--detector", "mahalanobis", "-q")
        ok("threshold", run_dir, "-q")
        made.append(run_dir)
    return made[2], made[1::-1]


def own_scores(run_dir, smooth=1):
    """A run's validation windows and the scores its own detector gives them (smoothed after
    its own training windows with ``smooth`` > 1)."""
    run = Run(run_dir)
    valid = run.split("valid")
    train = run.split("train") if smooth > 1 else None
    return valid, evaluation.rule_scores(run.detector().score, valid, train, smooth)[0]


def pooled_parts(runs, smooth=1):
    """The pooled days, oldest first, each window once: an earlier run's windows that end where a
    later run validates are that later run's. (windows, scores) per run."""
    parts, first = [], None
    for run_dir in runs:
        valid, scores = own_scores(run_dir, smooth)
        keep = valid.end_time < first if first is not None else np.ones(len(valid), dtype=bool)
        parts.insert(0, (valid.subset(np.flatnonzero(keep)), scores[keep]))
        first = valid.end_time[keep].min()
    return parts


def test_pool_chooses_on_each_run_s_validation_scored_by_that_run(nights):
    new, (last, before) = nights
    summary = json.loads(ok("threshold", new, "--previous", last, "--pool", 3, "--json", "-q").stdout)
    assert summary["pool"]["runs"] == [str(last.resolve()), str(before.resolve())]
    parts = pooled_parts((new, last, before))
    assert summary["pool"]["windows"] == sum(len(w) for w, _ in parts) > 2 * summary["pool"]["own_windows"]
    windows = Windows.concat([w for w, _ in parts])
    options = resolved_options(Run(new), ThresholdOptions())
    pooled = evaluation.scored(np.concatenate([s for _, s in parts]), windows, 2.0, options.merge, options.horizon)
    assert summary["value"] == pytest.approx(alarms_per_day(pooled, 1.0))
    # The median of the normal pooled scores: every window counts, so it tells the runs' own
    # scores from the new run scoring the earlier days itself (in-sample: its training rows).
    median = json.loads(ok("threshold", new, "--previous", last, "--pool", 3, "--rule", "quantile", "--q", 0.5,
                           "--json", "-q").stdout)["value"]
    normal = pooled.y == 0
    assert median == pytest.approx(np.median(pooled.scores[normal]))
    assert median != pytest.approx(np.median(Run(new).detector().score(windows)[normal]), rel=1e-3)


def test_pooled_scores_are_smoothed_by_each_run_as_its_own(nights):
    new, (last, before) = nights
    summary = json.loads(ok("threshold", new, "--previous", last, "--pool", 3, "--smooth", 5, "--rule", "quantile",
                            "--q", 0.5, "--factor", 1, "--json", "-q").stdout)
    windows_scores = pooled_parts((new, last, before), smooth=5)
    y = np.concatenate([np.asarray(w.y) for w, _ in windows_scores])
    scores = np.concatenate([s for _, s in windows_scores])
    # the median: every pooled window counts, the earlier runs' as much as the new one's
    assert summary["value"] == pytest.approx(np.median(scores[y == 0]))
    earlier_raw = [s for _, s in pooled_parts((new, last, before))][:-1] + [windows_scores[-1][1]]
    assert summary["value"] != pytest.approx(np.median(np.concatenate(earlier_raw)[y == 0]), rel=1e-6)


def test_pool_1_is_the_run_s_own_validation(nights):
    new, (last, _) = nights
    alone = json.loads(ok("threshold", new, "--json", "-q").stdout)
    pooled1 = json.loads(ok("threshold", new, "--previous", last, "--pool", 1, "--json", "-q").stdout)
    assert "pool" not in pooled1 and pooled1["value"] == alone["value"]
    # The run itself as the previous one: its windows are pooled once, nothing else is.
    itself = json.loads(ok("threshold", new, "--previous", new, "--pool", 2, "--json", "-q").stdout)
    assert "pool" not in itself and itself["value"] == alone["value"]


def test_pool_needs_previous_and_a_count_of_one_or_more(nights):
    new, _ = nights
    fails(2, "threshold", new, "--pool", 2, fragment="--pool 2 needs --previous RUN")
    assert invoke("threshold", new, "--pool", 0).exit_code == 2


def test_a_run_of_another_detector_ends_the_pool(nights, tmp_path):
    new, (last, before) = nights
    runs = tmp_path / "runs"
    copies = [Path(shutil.copytree(p, runs / p.name)) for p in (before, last, new)]
    ok("train", copies[0], "--detector", "pca", "-q")
    ok("threshold", copies[0], "-q")
    summary = json.loads(ok("threshold", copies[2], "--previous", copies[1], "--pool", 3, "--json", "-q").stdout)
    assert summary["pool"]["runs"] == [str(copies[1].resolve())]

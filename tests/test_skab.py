"""examples/skab/Makefile and evaluate-scores: SKAB's protocol through the command line.

A tiny SKAB-shaped set (``;``-separated, ``datetime``, ``anomaly`` and ``changepoint`` columns,
1-second rows with 2-second steps now and then, two files in a subfolder, one gzipped) goes
through the Makefile. The real valve1 files are run by bench/skab.py (`make bench`): a minute
of scoring is a benchmark, not a test.
"""

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, built_once, fails, ok
from lstm_rare_event.alarms.bootstrap import pooled_metrics, pooled_replicates
from lstm_rare_event.alarms.thresholds import Scored

MAKEFILE = ROOT / "examples/skab/Makefile"
SENSORS = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
           "Voltage", "Volume Flow RateRMS"]
ROWS, FIT_ROWS, ANOMALY = 700, 400, slice(500, 600)  # the anomaly: rows 500-599 of each file
CLI = f"{sys.executable} -m lstm_rare_event"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def skab_frame(seed: int) -> pd.DataFrame:
    """One experiment as SKAB writes it: 8 correlated sensors, a level shift of two of them in
    rows 500-599 (anomaly 1.0, changepoint 1.0 where it starts and ends), 1-second steps with
    a 2-second step every 17 rows, starting ``seed`` hours after the first experiment."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=(ROWS, 1))
    values = 0.7 * common + 0.7 * rng.normal(size=(ROWS, len(SENSORS))) + np.arange(len(SENSORS)) * 10
    values[ANOMALY, [0, 7]] += 6.0
    steps = np.where(np.arange(ROWS) % 17 == 16, 2, 1)
    start = pd.Timestamp("2020-03-09 10:14:33") + pd.Timedelta(hours=seed)  # an experiment an hour
    times = start + pd.to_timedelta(np.concatenate([[0], np.cumsum(steps[1:])]), "s")
    anomaly = np.zeros(ROWS)
    anomaly[ANOMALY] = 1.0
    changepoint = np.zeros(ROWS)
    changepoint[[ANOMALY.start, ANOMALY.stop - 1]] = 1.0
    frame = pd.DataFrame(values, columns=SENSORS)
    frame.insert(0, "datetime", times.strftime("%Y-%m-%d %H:%M:%S"))
    frame["anomaly"], frame["changepoint"] = anomaly, changepoint
    return frame


def write_skab(root: Path) -> None:
    (root / "sub").mkdir()
    skab_frame(1).to_csv(root / "sub/a.csv", sep=";", index=False)
    with gzip.open(root / "sub/b.csv.gz", "wt") as handle:
        skab_frame(2).to_csv(handle, sep=";", index=False)


@pytest.fixture(scope="session")
def skab_dir(tmp_path_factory, worker_id):
    """SKAB=DIR with sub/a.csv and sub/b.csv.gz, as SKAB ships its files (``;``, no index)."""
    return built_once(tmp_path_factory, worker_id, "skab", write_skab)


def make(skab: Path, out: Path, *extra, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(["make", "-f", str(MAKEFILE), f"SKAB={skab}", f"OUT={out}", f"CLI={CLI}", *extra],
                          env=env, capture_output=True, text=True, timeout=900)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


# The tests below count flagged rows, which the default smoothing (a median over 30 rows) shifts by
# 15 rows at each end of the anomaly: they run without it.
UNSMOOTHED = ("DETECTOR=mahalanobis", "SMOOTH=0")


@pytest.fixture(scope="session")
def made(skab_dir, tmp_path_factory, worker_id):
    """The Makefile run once with mahalanobis unsmoothed, two jobs (once for all workers)."""
    return built_once(tmp_path_factory, worker_id, "skab-out",
                      lambda out: make(skab_dir, out, *UNSMOOTHED, "-j2"))


def test_every_experiment_scored_row_by_row(made):
    assert sorted(p.name for p in made.glob("*.scores.csv")) == ["sub-a.scores.csv", "sub-b.scores.csv"]
    for name in ("sub-a", "sub-b"):
        scores = pd.read_csv(made / f"{name}.scores.csv")
        assert list(scores.columns[:5]) == ["time", "score", "flag", "episode", "opened"]
        assert len(scores) == ROWS  # every row of the file, the 400 fitting rows too
        # the first 9 rows end no window of 10 rows: no score, flag 0; the 2-second steps are no gap
        assert scores["score"].isna().sum() == 9 and scores["score"][:9].isna().all()
        assert (scores["flag"][:9] == 0).all()
        assert scores["flag"][ANOMALY].mean() > 0.9  # a 6-SD shift of two sensors
        assert scores["flag"][FIT_ROWS:ANOMALY.start].mean() < 0.05
        assert (made / "runs" / name / "threshold.json").is_file()


def test_results_pool_every_experiment(made):
    results = json.loads((made / "results.json").read_text())
    assert results["experiments"] == 2
    assert results["rows"] == 2 * ROWS and results["judged_rows"] == 2 * (ROWS - FIT_ROWS)
    judged, everything = results["judged"], results["all_rows"]
    n_anomalous = 2 * (ANOMALY.stop - ANOMALY.start)
    assert judged["tp"] + judged["fn"] == n_anomalous == everything["tp"] + everything["fn"]
    assert judged["fp"] + judged["tn"] == 2 * (ROWS - FIT_ROWS) - n_anomalous
    assert everything["fp"] + everything["tn"] == 2 * ROWS - n_anomalous
    assert judged["f1"] > 0.9 and judged["far"] < 0.05
    # SKAB's count adds the fitting rows as they were flagged: more normal rows, a FAR no higher
    assert everything["far"] <= judged["far"] + 1e-12
    low, high = judged["f1_interval"]
    assert low <= judged["f1"] <= high
    assert [e["scores"] for e in results["per_experiment"]] == [str(made / "sub-a.scores.csv"),
                                                                 str(made / "sub-b.scores.csv")]


def test_a_second_make_does_nothing_and_new_options_rerun(made, skab_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(made, out)  # with the files' times
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.scores.csv")}
    again = make(skab_dir, out, *UNSMOOTHED)
    assert " prepare " not in again.stdout and " score " not in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.scores.csv")} == before
    other = make(skab_dir, out, "DETECTOR=pca")
    assert other.stdout.count(" prepare ") == 2 and other.stdout.count("--detector pca") == 2
    assert json.loads((out / "runs/sub-b/train.json").read_text())["detector"]["detector"] == "pca"
    # pca keeps 3 components and smooths by default, with 1.5 x the largest smoothed score of the
    # 400 rows as the limit (SMOOTH_FACTOR_pca; the others' is 2)
    assert json.loads((out / "runs/sub-b/train.json").read_text())["detector"]["pca"]["components"] == 3
    chosen = json.loads((out / "runs/sub-b/threshold.json").read_text())
    assert chosen["smooth"] == 30 and chosen["params"] == {"q": 1.0, "factor": 1.5, "on": "fit"}
    assert "smooth" not in json.loads((made / "runs/sub-b/threshold.json").read_text())


def test_make_refuses_without_skab(tmp_path):
    done = make(tmp_path / "empty", tmp_path / "out", check=False)
    assert done.returncode != 0 and "no .csv or .csv.gz file under" in done.stderr


def test_score_reads_as_prepare_did_unless_told(made, skab_dir, tmp_path):
    # score was given no --sep in the Makefile; an explicit one still wins (and is wrong here)
    fails(2, "score", made / "runs/sub-a", skab_dir / "sub/a.csv", "--out", tmp_path / "s.csv", "--sep", ",")
    assert not (tmp_path / "s.csv").exists()


def test_evaluate_scores_refuses_what_it_cannot_pair(made, skab_dir, tmp_path):
    fails(2, "evaluate-scores", made / "runs/sub-a", fragment="pairs")
    # windows only (no --all-rows): rows are missing, so the flags cannot be matched to labels
    ok("score", made / "runs/sub-a", skab_dir / "sub/a.csv", "--out", tmp_path / "windows.csv", "-q")
    fails(2, "evaluate-scores", made / "runs/sub-a", tmp_path / "windows.csv", fragment="--all-rows")
    fails(2, "evaluate-scores", made / "runs/sub-a", made / "sub-b.scores.csv", fragment="--all-rows")


def test_pooled_metrics_resample_whole_experiments():
    counts = [[10, 2, 5, 80], [0, 0, 10, 90]]
    pooled = pooled_metrics(counts, replicates=200, seed=0)
    assert (pooled["tp"], pooled["fp"], pooled["fn"], pooled["tn"]) == (10, 2, 15, 170)
    assert pooled["f1"] == pytest.approx(20 / (20 + 2 + 15))
    low, high = pooled["f1_interval"]
    assert low == 0.0  # a replicate of the second experiment twice catches nothing
    assert high == pytest.approx(20 / (20 + 2 + 5))  # the first one twice


def test_pooled_replicates_pair_two_detectors_on_the_same_draws():
    # Two detectors that differ on the last of 10 experiments only: a replicate that does not
    # draw it has the same F1 for both, so the paired difference is exactly 0 there (about
    # (9/10)^10 = 35 % of the replicates); unpaired draws would almost never give 0.
    a = [[10, 2, 5, 80]] * 9 + [[10, 0, 0, 90]]
    b = [[10, 2, 5, 80]] * 9 + [[0, 10, 10, 80]]
    difference = pooled_replicates(a, 1000, seed=3)["f1"] - pooled_replicates(b, 1000, seed=3)["f1"]
    assert 0.25 < np.mean(difference == 0) < 0.45
    assert (difference >= 0).all()


def test_threshold_on_fit_reads_train_and_valid_scores():
    scored = Scored(np.array([5.0, 9.0]), np.array([0, 1]), np.array([0, 1]), np.array([]), 1.0, 1.0, 1.0,
                    train_normal=np.array([1.0, 2.0]))
    assert sorted(scored.normal("fit")) == [1.0, 2.0, 5.0]
    assert sorted(scored.normal("train")) == [1.0, 2.0]

"""The pca detector: Hotelling's T-squared and the Q residual, their limits and their split over
the sensors, on rows of a known factor model."""

import json

import numpy as np
import pytest
from conftest import ok

from lstm_rare_event import detectors
from lstm_rare_event.alarms.metrics import window_metrics
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import to_jsonable
from lstm_rare_event.preprocess.windows import Windows

T0 = np.datetime64("2024-03-01T00:00:00", "s")


def factor_rows(n, seed, features=6):
    """Rows of ``features`` sensors moved by 2 hidden factors plus a little noise: most of the
    variance in 2 components, a correlation that an anomaly can break."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(0).normal(size=(2, features))
    return rng.normal(size=(n, 2)) @ mixing + 0.1 * rng.normal(size=(n, features))


def as_windows(rows, y=None, steps=3):
    """Windows whose last row is ``rows`` (the earlier rows are noise the detector must ignore)."""
    rows = np.asarray(rows, dtype=np.float32)
    X = np.random.default_rng(9).normal(size=(len(rows), steps, rows.shape[1])).astype(np.float32)
    X[:, -1, :] = rows
    n = len(rows)
    times = T0 + np.arange(n) * np.timedelta64(120, "s")
    y = np.zeros(n, np.int8) if y is None else np.asarray(y, np.int8)
    return Windows(X, y, times, np.full(n, np.datetime64("NaT", "s")), np.full(n, T0))


@pytest.fixture(scope="module")
def fitted():
    return detectors.create("pca").fit(as_windows(factor_rows(400, seed=1)))


def test_the_components_explain_the_asked_variance(fitted):
    described = fitted.describe()["pca"]
    assert described["components"] == 2  # the two factors; the noise is left to Q
    assert described["variance_explained"] >= 0.95
    assert 0 < described["t2_limit"] and 0 < described["q_limit"]
    assert detectors.create("pca", components=4).fit(as_windows(factor_rows(400, 1))).describe()["pca"]["components"] == 4


@pytest.mark.parametrize("combine", ["sum", "max"])
def test_contributions_sum_to_the_statistics_and_the_score(fitted, combine):
    detector = detectors.create("pca", combine=combine).fit(as_windows(factor_rows(400, seed=1)))
    test = as_windows(factor_rows(50, seed=2) + np.random.default_rng(3).normal(0, 1, (50, 6)))
    parts = detector.statistics(test)
    np.testing.assert_allclose(parts["t2_contributions"].sum(axis=1), parts["t2"], rtol=1e-12)
    np.testing.assert_allclose(parts["q_contributions"].sum(axis=1), parts["q"], rtol=1e-12)
    assert (parts["q_contributions"] >= 0).all() and (parts["t2"] >= 0).all()
    scores, contributions = detector.explain(test)
    np.testing.assert_allclose(contributions.sum(axis=1), scores, rtol=1e-9)
    t2_limit, q_limit = detector.limits_
    ratios = np.stack([parts["t2"] / t2_limit, parts["q"] / q_limit])
    expected = ratios.sum(axis=0) if combine == "sum" else ratios.max(axis=0)
    np.testing.assert_allclose(scores, expected, rtol=1e-9)


def test_t_squared_is_the_hand_computed_distance_in_the_components(fitted):
    test = as_windows(factor_rows(5, seed=4))
    z = (np.asarray(test.X[:, -1, :], np.float64) - fitted.mean_) / fitted.scale_
    scores = z @ fitted.loadings_
    np.testing.assert_allclose(fitted.statistics(test)["t2"], (scores ** 2 / fitted.eigenvalues_).sum(axis=1))
    residual = z - scores @ fitted.loadings_.T
    np.testing.assert_allclose(fitted.statistics(test)["q"], (residual ** 2).sum(axis=1), atol=1e-12)


def test_a_shifted_sensor_is_named_as_the_top_contributor(fitted):
    rows = factor_rows(30, seed=5)
    rows[:, 3] += 3.0 * factor_rows(400, 1)[:, 3].std()
    parts = fitted.statistics(as_windows(rows))
    _, contributions = fitted.explain(as_windows(rows))
    assert (np.argmax(parts["q_contributions"], axis=1) == 3).all()
    assert (np.argmax(contributions, axis=1) == 3).all()


def test_scores_rank_broken_correlations_above_normal_rows(fitted):
    normal_rows = factor_rows(300, seed=6)
    broken = factor_rows(30, seed=7)
    broken[:, :3] *= -1  # half the sensors move against the others
    y = np.r_[np.zeros(300), np.ones(30)]
    scores = fitted.score(as_windows(np.vstack([normal_rows, broken])))
    assert window_metrics(y, scores > 1e9, scores)["roc_auc"] > 0.9  # a flip of values near 0 is no anomaly
    assert np.median(scores[:300]) < 1 < np.median(scores[300:])  # 1: a row at its limits


def test_saved_and_loaded_scores_the_same(fitted, tmp_path):
    fitted.save(tmp_path)
    loaded = detectors.load(tmp_path)
    test = as_windows(factor_rows(20, seed=9))
    for ours, theirs in zip(fitted.explain(test), loaded.explain(test)):
        np.testing.assert_array_equal(ours, theirs)
    assert to_jsonable(loaded.describe()) == to_jsonable(fitted.describe())


def test_scoring_imports_no_scipy_or_sklearn(fitted, tmp_path, heavy_imports):
    fitted.save(tmp_path)
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from lstm_rare_event import detectors\n"
        "from lstm_rare_event.preprocess.windows import Windows\n"
        "t = np.zeros(4, 'datetime64[s]')\n"
        "w = Windows(np.zeros((4, 3, 6), np.float32), np.zeros(4, np.int8), t, t, t)\n"
        f"assert detectors.load({str(tmp_path)!r}).score(w).shape == (4,)\n"
        "assert 'scipy' not in sys.modules\n"
    )
    assert heavy_imports(code) == []


@pytest.mark.parametrize("params, fragment", [
    ({"variance": 1.5}, "--variance must be a share"),
    ({"combine": "mean"}, "--combine 'mean': choose one of sum, max"),
    ({"components": 9}, "--components 9: the data has only 6 features"),
])
def test_bad_options_are_one_line(params, fragment):
    with pytest.raises(UserError, match=fragment):
        detectors.create("pca", **params).fit(as_windows(factor_rows(50, 1)))


def test_pca_through_the_command_line_names_sensors(runs, new_csv, tmp_path):
    trained = json.loads((runs["pca"] / "train.json").read_text())["detector"]
    assert trained["detector"] == "pca" and trained["pca"]["variance_explained"] >= 0.95
    ok("score", runs["pca"], new_csv, "--out", tmp_path / "scores.csv", "-q")
    header = (tmp_path / "scores.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["time", "score", "flag"] and "sensor_1" in header
    assert "T-squared" in ok("inspect", runs["pca"]).output

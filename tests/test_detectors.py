"""The detectors on hand-made windows with known answers: the reconstruction error, the
Mahalanobis distance, minutes since a restart; saving and loading every detector (JSON and
npz, never pickle), and the registry's errors."""

import json
import re

import numpy as np
import pytest

from lstm_rare_event import detectors
from lstm_rare_event.alarms.metrics import window_metrics
from lstm_rare_event.detectors.base import CONFIG_JSON, FORMAT
from lstm_rare_event.detectors.lstm_ae import LstmOptions
from lstm_rare_event.detectors.lstm_ae import numpy_engine as engine
from lstm_rare_event.detectors.lstm_ae.detector import feature_errors
from lstm_rare_event.detectors.lstm_ae.keras_engine import MODEL_KERAS
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import to_jsonable
from lstm_rare_event.preprocess.windows import Windows, segment_starts, segments

START = np.datetime64("2024-03-01T00:00:00", "s")
NAT = np.datetime64("NaT", "s")


def at(minutes):
    return START + np.asarray(minutes) * np.timedelta64(1, "m")


def windows(X=None, y=None, end_minutes=None, start_minutes=None, n=20, steps=3, features=2, seed=1):
    """Windows of ``X`` (random when not given), every row 2 minutes apart in one segment
    unless the end and segment-start minutes are given."""
    if X is None:
        X = np.random.default_rng(seed).normal(size=(n, steps, features))
    X = np.asarray(X, dtype=np.float32)
    n = len(X)
    y = np.zeros(n, dtype=np.int8) if y is None else np.asarray(y, dtype=np.int8)
    end = at(np.arange(n) * 2 if end_minutes is None else end_minutes)
    start = at(np.zeros(n) if start_minutes is None else start_minutes)
    return Windows(X, y, end, np.full(n, NAT), start)


def last_rows(rows, y=None):
    """Windows of 3 steps whose last row is ``rows`` (the earlier rows are noise that the
    Mahalanobis detector must ignore)."""
    rows = np.asarray(rows, dtype=np.float32)
    X = np.random.default_rng(0).normal(size=(len(rows), 3, rows.shape[1])).astype(np.float32)
    X[:, -1, :] = rows
    return windows(X, y)


# -- the reconstruction error of the autoencoder --------------------------------------------
# Two windows of 3 steps x 2 features; the reconstruction is off by known amounts.
X = np.zeros((2, 3, 2), dtype=np.float32)
X_HAT = np.array([
    [[1, 0], [0, 2], [3, 1]],  # window 0: last step off by (3, 1)
    [[2, 2], [0, 0], [0, 4]],  # window 1: last step off by (0, 4)
], dtype=np.float32)


def test_last_step_errors_are_the_recipe():
    fe = feature_errors(X, X_HAT, "last")
    assert fe.tolist() == [[9, 1], [0, 16]]
    assert fe.mean(axis=1).tolist() == [5, 8]  # the window's score: the recipe's MSE


def test_mean_errors_average_over_steps():
    fe = feature_errors(X, X_HAT, "mean")
    np.testing.assert_allclose(fe, [[10 / 3, 5 / 3], [4 / 3, 20 / 3]])
    np.testing.assert_allclose(fe.mean(axis=1), [2.5, 4.0])


def test_errors_do_not_depend_on_the_sign_of_the_difference():
    np.testing.assert_array_equal(feature_errors(X_HAT, X, "mean"), feature_errors(X, X_HAT, "mean"))


def test_bad_mode_and_shapes():
    with pytest.raises(UserError, match="choose one of mean, last"):
        feature_errors(X, X_HAT, "max")
    with pytest.raises(UserError, match="--error 'max': choose one of mean, last"):
        LstmOptions(error="max")
    with pytest.raises(ValueError, match="same"):
        feature_errors(X, X_HAT[:, :2], "mean")
    with pytest.raises(ValueError, match="same"):  # would broadcast
        feature_errors(X, X_HAT[:, -1:], "mean")


ARCH = Architecture((4,), (4,), "tanh", 3, 2)


def unfitted_lstm(error="last", seed=0):
    """An lstm detector holding a real network with random weights (3 steps, 2 features),
    as if it were fitted: no TensorFlow needed."""
    rng = np.random.default_rng(seed)
    shapes = [shape for _, arrays in engine.weight_layout(ARCH) for shape in arrays.values()]
    detector = detectors.create("lstm", encoder="4", activation="tanh", error=error)
    detector.arch_, detector.n_features_ = ARCH, ARCH.n_features
    detector.model_ = engine.NumpyModel.from_weights(ARCH, [rng.normal(0, 0.5, s).astype(np.float32) for s in shapes])
    return detector


@pytest.mark.parametrize("mode", ["last", "mean"])
def test_lstm_scores_are_the_mean_reconstruction_error_of_its_network(mode):
    detector, w = unfitted_lstm(mode), windows()
    scores, contributions = detector.explain(w)
    X_hat = detector.model_.predict(w.X)
    assert not np.allclose(X_hat, w.X)  # the errors below are not trivially zero
    np.testing.assert_array_equal(contributions, feature_errors(w.X, X_hat, mode))
    np.testing.assert_array_equal(scores, contributions.mean(axis=1))
    assert scores.shape == (20,) and contributions.shape == (20, 2)


def test_a_model_returning_nan_is_a_user_error():
    class Diverged:
        def predict(self, X):
            return np.full_like(X, np.nan)

    detector = unfitted_lstm()
    detector.model_ = Diverged()
    with pytest.raises(UserError, match="not finite"):
        detector.score(windows())


def test_windows_of_other_features_are_a_user_error():
    with pytest.raises(UserError, match="fitted on 2 features"):
        unfitted_lstm().score(windows(features=3))


def test_missing_model_is_a_user_error_naming_the_file(tmp_path):
    unfitted_lstm().save(tmp_path)
    (tmp_path / engine.MODEL_NPZ).unlink()
    with pytest.raises(UserError, match=r"model\.npz: not found"):
        detectors.load(tmp_path)


def test_scoring_imports_neither_tensorflow_nor_sklearn(tmp_path, heavy_imports):
    unfitted_lstm().save(tmp_path)
    code = (
        "import numpy as np\n"
        "from lstm_rare_event import detectors\n"
        "from lstm_rare_event.alarms import metrics, thresholds\n"
        "from lstm_rare_event.preprocess.windows import Windows\n"
        "t = np.zeros(4, 'datetime64[s]')\n"
        "w = Windows(np.zeros((4, 3, 2), np.float32), np.zeros(4, np.int8), t, t, t)\n"
        f"assert detectors.load({str(tmp_path)!r}).score(w).shape == (4,)\n"
    )
    assert heavy_imports(code) == []


# -- the Mahalanobis distance -----------------------------------------------------------------
def mahalanobis(train, test):
    return detectors.create("mahalanobis").fit(train).score(test)


def test_mahalanobis_matches_a_hand_computed_distance():
    # Normal last rows (±2, 0) and (0, ±1): mean 0, variances 8/3 and 2/3 (ddof 1), no covariance.
    # The positive window far away must not enter the fit.
    train = last_rows([[2, 0], [-2, 0], [0, 1], [0, -1], [100, 100]], y=[0, 0, 0, 0, 1])
    scored = mahalanobis(train, last_rows([[2, 1], [0, 0], [4, 0]]))
    assert scored == pytest.approx([4 / (8 / 3) + 1 / (2 / 3), 0.0, 16 / (8 / 3)])


def test_mahalanobis_of_a_correlated_gaussian_matches_the_2x2_inverse():
    rng = np.random.default_rng(1)
    rows = rng.multivariate_normal([1.0, -2.0], [[2.0, 1.2], [1.2, 1.0]], size=500)
    mean = rows.astype(np.float32).astype(np.float64).mean(axis=0)
    (a, b), (_, d) = np.cov(rows.astype(np.float32).astype(np.float64), rowvar=False)
    point = np.array([3.0, 0.5])
    dx, dy = point - mean
    by_hand = (d * dx * dx - 2 * b * dx * dy + a * dy * dy) / (a * d - b * b)
    assert mahalanobis(last_rows(rows), last_rows([point]))[0] == pytest.approx(by_hand, rel=1e-5)


def test_mahalanobis_with_a_constant_sensor_ignores_it_instead_of_failing():
    train = last_rows([[2, 5], [-2, 5], [0, 5], [0, 5]])  # the second sensor never moves
    scored = mahalanobis(train, last_rows([[2, 5], [2, 9]]))
    assert np.isfinite(scored).all()
    assert scored == pytest.approx([4 / (8 / 3)] * 2)


def test_mahalanobis_needs_normal_training_windows():
    with pytest.raises(UserError, match="at least 2 normal training windows"):
        mahalanobis(last_rows([[1, 1]], y=[1]), last_rows([[0, 0]]))


def test_mahalanobis_contributions_sum_to_the_score():
    rng = np.random.default_rng(3)
    rows = rng.multivariate_normal([0, 1, 2], [[2, 1, 0], [1, 2, 0.5], [0, 0.5, 1]], size=200)
    detector = detectors.create("mahalanobis").fit(last_rows(rows))
    scores, contributions = detector.explain(last_rows(rng.normal(size=(30, 3)) * 3))
    assert contributions.shape == (30, 3)
    assert (contributions < 0).any()  # correlated sensors: a term can be negative, the sum cannot
    np.testing.assert_allclose(contributions.sum(axis=1), scores, rtol=1e-12, atol=1e-12)


# -- minutes since a restart ----------------------------------------------------------------
# A timeline of the original table: a stop after minute 4 (the row at 4 is a break, the
# downtime is cut out), a restart at 10, another stop after 14, a restart at 30.
TIMELINE = at([0, 2, 4, 10, 12, 14, 30, 32, 34])


def test_minutes_since_restart_on_a_timeline_with_gaps():
    starts = segment_starts(TIMELINE, segments(TIMELINE, np.timedelta64(2, "m")))
    assert ((TIMELINE - starts) / np.timedelta64(1, "m")).tolist() == [0, 2, 4, 0, 2, 4, 0, 2, 4]


def test_restart_score_is_highest_right_after_a_restart():
    starts = segment_starts(TIMELINE, segments(TIMELINE, np.timedelta64(2, "m")))
    rows = [2, 3, 4, 7]  # windows ending at minutes 4, 10, 12 and 32
    w = windows(n=4, end_minutes=[4, 10, 12, 32],
                start_minutes=(starts[rows] - START) / np.timedelta64(1, "m"))
    scores, contributions = detectors.create("restart").fit(w).explain(w)
    assert contributions is None
    assert scores == pytest.approx([1 / 5, 1, 1 / 3, 1 / 3])


def test_restart_score_is_one_over_one_plus_minutes_since_the_segment_start():
    rng = np.random.default_rng(4)
    start = rng.integers(0, 1000, 50)
    minutes = rng.integers(0, 500, 50)
    w = windows(n=50, end_minutes=start + minutes, start_minutes=start)
    scores, contributions = detectors.create("restart").fit(w).explain(w)
    assert contributions is None
    np.testing.assert_allclose(scores, 1 / (1 + minutes), rtol=1e-15)
    assert scores.max() <= 1 and scores.min() > 0


def test_restart_detector_finds_breaks_that_follow_restarts():
    # Three days of 2-minute rows, an hour of cut-out downtime every 6 hours; the three rows
    # from each restart on precede a break.
    minutes = np.arange(3 * 720) * 2
    minutes = minutes + (minutes // 360) * 60
    time = at(minutes)
    start = segment_starts(time, segments(time, np.timedelta64(2, "m")))
    y = ((time - start) <= np.timedelta64(4, "m")).astype(np.int8)
    w = windows(n=len(minutes), y=y, end_minutes=minutes, start_minutes=(start - START) / np.timedelta64(1, "m"))
    scores = detectors.create("restart").fit(w).score(w)
    metrics = window_metrics(w.y, scores > 0.2, scores)
    assert metrics["roc_auc"] == metrics["pr_auc"] == 1.0


# -- every detector: fit, save, load -----------------------------------------------------------
FIT_PARAMS = {"lstm": {"encoder": "2", "epochs": 1, "batch_size": 32, "seed": 1}, "mahalanobis": {}, "pca": {},
              "restart": {}}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Each detector fitted on the same small synthetic windows and saved (one tiny Keras fit)."""
    train = windows(n=66, y=[1, 1] + [0] * 64, seed=2, start_minutes=np.full(66, -30))
    valid = windows(n=32, seed=3, start_minutes=np.full(32, -30))
    test = windows(n=25, seed=4, start_minutes=np.arange(25) % 7 * -10)
    made = {}
    for name in detectors.NAMES:
        detector = detectors.create(name, **FIT_PARAMS[name]).fit(train, valid)
        folder = tmp_path_factory.mktemp("fitted") / name
        detector.save(folder)
        made[name] = detector, folder, test
    return made


@pytest.mark.parametrize("name", detectors.NAMES)
def test_saved_and_loaded_detector_scores_the_same(fitted, name):
    detector, folder, test = fitted[name]
    loaded = detectors.load(folder)
    assert type(loaded) is type(detector) and loaded.name == name
    assert loaded.options == detector.options
    ours, theirs = detector.explain(test), loaded.explain(test)
    np.testing.assert_array_equal(ours[0], theirs[0])  # exactly: both run on NumPy
    assert (ours[1] is None) == (theirs[1] is None) == (name == "restart")
    if ours[1] is not None:
        np.testing.assert_array_equal(ours[1], theirs[1])
    assert np.isfinite(ours[0]).all() and (ours[0] >= 0).all()
    assert to_jsonable(loaded.describe()) == to_jsonable(detector.describe())


@pytest.mark.parametrize("name", detectors.NAMES)
def test_saved_detector_holds_no_pickle(fitted, name):
    _, folder, _ = fitted[name]
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert CONFIG_JSON in {p.name for p in files}
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".joblib")]
    for path in files:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                for key in data.files:
                    assert data[key].dtype != object, (path, key)
    json.loads((folder / CONFIG_JSON).read_text())


def test_lstm_loads_with_keras_too(fitted):
    detector, folder, test = fitted["lstm"]
    assert (folder / MODEL_KERAS).is_file()
    keras_scores = detectors.load(folder, engine="keras").score(test)
    np.testing.assert_allclose(keras_scores, detector.score(test), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["mahalanobis", "restart"])
def test_detectors_without_a_network_refuse_the_keras_engine(fitted, name):
    with pytest.raises(UserError, match=f"--engine keras: the {name} detector runs on numpy only"):
        detectors.load(fitted[name][1], engine="keras")


# -- the registry's errors ---------------------------------------------------------------
def test_an_option_of_another_detector_is_a_user_error_naming_it():
    with pytest.raises(UserError, match="--epochs does not apply to --detector mahalanobis"):
        detectors.create("mahalanobis", epochs=3)
    with pytest.raises(UserError, match="--batch-size does not apply to --detector restart"):
        detectors.create("restart", batch_size=3)
    with pytest.raises(UserError, match="detector .nearest.: choose one of lstm, mahalanobis, pca, restart"):
        detectors.create("nearest")


@pytest.mark.parametrize("config, fragment", [
    ({"format": FORMAT, "options": {}, "state": {"n_features": 2}}, "key 'detector' is missing"),
    ({"format": FORMAT, "detector": "nearest", "options": {}, "state": {"n_features": 2}}, "key 'detector' is 'nearest'"),
    ({"detector": "restart", "options": {}, "state": {"n_features": 2}}, "key 'format' is missing"),
])
def test_a_detector_json_without_a_known_detector_is_a_user_error_naming_the_file(tmp_path, config, fragment):
    (tmp_path / CONFIG_JSON).write_text(json.dumps(config))
    with pytest.raises(UserError, match=fragment) as info:
        detectors.load(tmp_path)
    assert str(tmp_path / CONFIG_JSON) in str(info.value)


def test_a_missing_or_broken_detector_json_is_a_user_error_naming_the_file(tmp_path):
    with pytest.raises(UserError, match=r"detector\.json: file not found"):
        detectors.load(tmp_path)
    (tmp_path / CONFIG_JSON).write_text("{not json")
    with pytest.raises(UserError, match=r"detector\.json: not valid JSON"):
        detectors.load(tmp_path)


# -- capabilities: what the steps ask a detector instead of its name ---------------------
def test_capabilities_are_declared_on_the_classes():
    lstm, mahalanobis, restart = (detectors.detector_class(n) for n in ("lstm", "mahalanobis", "restart"))
    assert lstm.engines == ("numpy", "keras") and mahalanobis.engines == restart.engines == ("numpy",)
    assert lstm.warm_starts and not mahalanobis.warm_starts and not restart.warm_starts
    assert mahalanobis.names_sensors and not restart.names_sensors
    assert detectors.engines() == ("numpy", "keras")


def test_a_load_option_the_detector_does_not_take_is_a_user_error(fitted):
    with pytest.raises(UserError, match="'batch' does not apply to the mahalanobis detector"):
        detectors.load(fitted["mahalanobis"][1], batch=3)
    assert detectors.load(fitted["mahalanobis"][1], engine=None, allow_pickle=True).engine == "numpy"


def test_a_detector_that_cannot_warm_start_refuses_to(fitted):
    with pytest.raises(UserError, match="mahalanobis detector cannot start from an earlier fit"):
        detectors.create("mahalanobis").warm_start(fitted["mahalanobis"][0])


def test_backtest_options_go_to_the_detectors_that_take_them():
    assert detectors.assign_options(("lstm", "restart"), {"epochs": 3}) == {"lstm": {"epochs": 3}}
    assert detectors.assign_options(("restart",), {}) == {}
    with pytest.raises(UserError, match="--epochs applies to the lstm detector, which --detector does not"):
        detectors.assign_options(("restart",), {"epochs": 3})


# -- scikit-learn style: DataFrames and arrays -------------------------------------------------
@pytest.mark.parametrize("name", ["mahalanobis", "pca"])
def test_detectors_fit_and_score_dataframes_and_arrays(name):
    import pandas as pd

    rows = np.random.default_rng(5).normal(size=(80, 4))
    frame = pd.DataFrame(rows, columns=["a", "b", "c", "d"])
    from_frame = detectors.create(name).fit(frame)
    scores = from_frame.score_samples(frame)
    assert scores.shape == (80,) and np.isfinite(scores).all()
    np.testing.assert_array_equal(detectors.create(name).fit(rows).score_samples(rows), scores)
    # a 2-D row is a window of one row: the same score as a 3-D window ending in that row
    windows3 = np.concatenate([np.zeros((80, 2, 4)), rows[:, None, :]], axis=1)
    np.testing.assert_array_equal(from_frame.score_samples(windows3), scores)
    far = from_frame.score_samples(rows[:1] + 10)
    assert far[0] > scores.max()
    assert from_frame.explain(frame)[1].shape == (80, 4)


@pytest.mark.parametrize("X, fragment", [
    ("text column", "column 'name' is not numeric"),
    ("nan", "X: row 1 has a missing or infinite value"),
    ("1-D", "expected rows (a DataFrame or a 2-D array) or windows"),
])
def test_bad_arrays_are_one_line(X, fragment):
    import pandas as pd

    given = {"text column": pd.DataFrame({"name": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]}),
             "nan": np.array([[1.0, 2.0], [np.nan, 1.0], [0.0, 0.0]]),
             "1-D": np.arange(5.0)}[X]
    with pytest.raises(UserError, match=re.escape(fragment)):
        detectors.create("mahalanobis").fit(given)


def test_restart_needs_times_that_arrays_do_not_carry():
    with pytest.raises(UserError, match="restart detector scores the time since a restart"):
        detectors.create("restart").fit(np.zeros((3, 2)))

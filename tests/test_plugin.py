"""Plug-in detectors: any class with fit and score_samples or decision_function, by import path
(``--detector package.module:Class``) or as an object in Python; the sign conventions, the
window shapes it is fed, and saving only with --allow-pickle. One PyOD model when PyOD is
installed."""

import json

import numpy as np
import pytest
from conftest import fails, ok

from lstm_rare_event import detectors
from lstm_rare_event.detectors.plugin import MODEL_PICKLE, PluginDetector
from lstm_rare_event.errors import UserError

HERE = __name__  # this module, importable by the plug-in loader as the tests run


class Distance:
    """Distance of a row from the training mean; records the shape of what it was fed."""

    def __init__(self, power=1):
        self.power = power

    def fit(self, X):
        self.fed_ = X.shape
        self.mean_ = X.reshape(len(X), -1).mean(axis=0)
        return self

    def _distance(self, X):
        self.fed_ = X.shape
        return np.linalg.norm(X.reshape(len(X), -1) - self.mean_, axis=1) ** self.power


class HigherIsAnomalous(Distance):
    """PyOD's convention: decision_function, higher = more anomalous."""

    def decision_function(self, X):
        return self._distance(X) + 100.0  # an offset the training minimum removes


class HigherIsNormal(Distance):
    """scikit-learn's convention: score_samples, higher = more normal (and a decision_function
    that must not be used, as scikit-learn's is the same score shifted)."""

    def score_samples(self, X):
        return -self._distance(X)

    def decision_function(self, X):
        raise AssertionError("score_samples comes first")


RNG = np.random.default_rng(0)
TRAIN = RNG.normal(size=(60, 3, 2))
TEST = np.concatenate([RNG.normal(size=(5, 3, 2)), RNG.normal(size=(1, 3, 2)) + 6])


@pytest.mark.parametrize("cls", [HigherIsAnomalous, HigherIsNormal])
def test_both_conventions_give_higher_for_anomalies_and_0_at_the_training_minimum(cls):
    detector = detectors.create(f"{HERE}:{cls.__name__}").fit(TRAIN)
    assert detector.name == f"{HERE}:{cls.__name__}"
    np.testing.assert_allclose(detector.score_samples(TRAIN).min(), 0.0, atol=1e-12)
    scores = detector.score_samples(TEST)
    assert (scores >= 0).all() and scores.argmax() == 5
    distance = np.linalg.norm(TEST[:, -1, :] - TRAIN[:, -1, :].mean(axis=0), axis=1)
    np.testing.assert_allclose(np.diff(scores), np.diff(distance))  # the class's own score, shifted
    assert detector.explain(TEST)[1] is None and not detector.names_sensors


@pytest.mark.parametrize("how, shape", [("last", (60, 2)), ("flat", (60, 6)), ("windows", (60, 3, 2))])
def test_the_plugin_input_option_says_what_the_class_is_fed(how, shape):
    detector = detectors.create(f"{HERE}:HigherIsAnomalous", plugin_input=how).fit(TRAIN)
    assert detector.estimator_.fed_ == shape


def test_constructor_parameters_come_from_json_and_objects_work_too():
    squared = detectors.create(f"{HERE}:HigherIsAnomalous", plugin_params='{"power": 2}').fit(TRAIN)
    assert squared.estimator_.power == 2
    from_instance = detectors.create(HigherIsAnomalous(power=2)).fit(TRAIN)
    from_class = detectors.create(HigherIsAnomalous).fit(TRAIN)
    assert isinstance(from_instance, PluginDetector) and from_class.estimator_.power == 1
    np.testing.assert_array_equal(from_instance.score(TEST), squared.score(TEST))


@pytest.mark.parametrize("name, params, fragment", [
    (f"{HERE}:Nowhere", {}, "has no Nowhere"),
    ("no_such_package.models:X", {}, "cannot import no_such_package.models"),
    (f"{HERE}:Distance", {}, "a plug-in needs fit and score_samples or decision_function"),
    (f"{HERE}:HigherIsNormal", {"plugin_params": "[1]"}, "expected a JSON object"),
    (f"{HERE}:HigherIsNormal", {"plugin_params": '{"depth": 3}'}, "does not take them"),
    (f"{HERE}:HigherIsNormal", {"plugin_input": "rows"}, "--plugin-input 'rows': choose one of"),
])
def test_bad_plugins_are_one_line(name, params, fragment):
    with pytest.raises(UserError, match=fragment):
        detectors.create(name, **params)


def test_saving_and_loading_need_the_pickle_permission(tmp_path):
    detector = detectors.create(f"{HERE}:HigherIsNormal").fit(TRAIN)
    with pytest.raises(UserError, match="can only be saved with pickle.*--allow-pickle"):
        detector.save(tmp_path)
    assert not list(tmp_path.iterdir())
    detector.save(tmp_path, allow_pickle=True)
    assert (tmp_path / MODEL_PICKLE).is_file()
    assert json.loads((tmp_path / "detector.json").read_text())["detector"] == f"{HERE}:HigherIsNormal"
    with pytest.raises(UserError, match="saved with pickle, and loading it runs code: pass --allow-pickle"):
        detectors.load(tmp_path)
    loaded = detectors.load(tmp_path, allow_pickle=True)
    np.testing.assert_array_equal(loaded.score(TEST), detector.score(TEST))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, demo_csv):
    run = tmp_path_factory.mktemp("plugin") / "run"
    ok("prepare", demo_csv, "--out", run, "-q")
    return run


def test_train_refuses_a_plugin_without_allow_pickle_before_fitting(prepared, tmp_path):
    fails(2, "train", prepared, "--detector", f"{HERE}:HigherIsNormal", "--out", tmp_path / "p",
          fragment="pass --allow-pickle")
    assert not (tmp_path / "p" / "detector").exists()


def test_a_plugin_run_thresholds_evaluates_scores_and_reports_with_the_flag(prepared, new_csv, tmp_path):
    run = tmp_path / "p"
    ok("train", prepared, "--detector", f"{HERE}:HigherIsNormal", "--out", run, "--allow-pickle", "-q")
    fails(2, "threshold", run, "-q", fragment="--allow-pickle")
    saved = json.loads(ok("threshold", run, "--allow-pickle", "--json", "-q").stdout)
    assert saved["detector"] == f"{HERE}:HigherIsNormal" and saved["engine"] == "python"
    report = json.loads(ok("evaluate", run, "--allow-pickle", "--json", "-q").stdout)
    assert report["windows"]["n_windows"] > 0
    fails(2, "score", run, new_csv, "--out", tmp_path / "s.csv", "-q", fragment="--allow-pickle")
    ok("score", run, new_csv, "--out", tmp_path / "s.csv", "--allow-pickle", "-q")
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "time,score,flag,episode,opened"  # no sensors
    ok("report", run, "--out", tmp_path / "r.html", "--allow-pickle", "-q")


def test_backtest_runs_a_plugin_beside_a_built_in_without_pickle(history, tmp_path):
    out = tmp_path / "bt"
    result = ok("backtest", history, "--out", out, "--detector", f"mahalanobis,{HERE}:HigherIsNormal",
                "--start", "70%", "--every", "12h", "--train-window", "1d", "--valid-window", "6h", "--json", "-q")
    report = json.loads(result.stdout)
    assert set(report["detectors"]) == {"mahalanobis", f"{HERE}:HigherIsNormal"}
    assert not list(out.rglob(MODEL_PICKLE))


def test_plugin_options_need_a_plugin(history, tmp_path):
    fails(2, "backtest", history, "--out", tmp_path / "bt", "--detector", "mahalanobis", "--plugin-input", "flat",
          fragment="--plugin-input applies to the plug-in detector, which --detector does not include")


# -- PyOD ------------------------------------------------------------------------------------
def test_a_pyod_model_trains_thresholds_and_backtests_through_the_cli(prepared, history, tmp_path):
    pytest.importorskip("pyod")
    run = tmp_path / "ecod"
    ok("train", prepared, "--detector", "pyod.models.ecod:ECOD", "--out", run, "--allow-pickle", "-q")
    ok("threshold", run, "--allow-pickle", "-q")
    report = json.loads(ok("evaluate", run, "--allow-pickle", "--json", "-q").stdout)
    assert report["detector"] == "pyod.models.ecod:ECOD" and 0 <= report["windows"]["roc_auc"] <= 1
    result = ok("backtest", history, "--out", tmp_path / "bt", "--detector", "mahalanobis,pyod.models.ecod:ECOD",
                "--start", "70%", "--every", "12h", "--train-window", "1d", "--valid-window", "6h", "--json", "-q")
    scored = json.loads(result.stdout)["detectors"]["pyod.models.ecod:ECOD"]
    assert scored["windows"]["n_windows"] > 0

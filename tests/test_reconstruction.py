"""Reconstruction error per feature and per window, from hand-made arrays and a real model.npz."""


import numpy as np
import pytest

from lstm_rare_event import reconstruction
from lstm_rare_event.detectors.lstm_ae import numpy_engine as engine
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.errors import UserError
from lstm_rare_event.reconstruction import compute_errors, feature_errors, window_errors
from lstm_rare_event.preprocess.windows import Windows


# Two windows of 3 steps x 2 features; the reconstruction is off by known amounts.
X = np.zeros((2, 3, 2), dtype=np.float32)
X_HAT = np.array([
    [[1, 0], [0, 2], [3, 1]],  # window 0: last step off by (3, 1)
    [[2, 2], [0, 0], [0, 4]],  # window 1: last step off by (0, 4)
], dtype=np.float32)


def test_last_step_errors_are_the_recipe():
    fe = feature_errors(X, X_HAT, "last")
    assert fe.tolist() == [[9, 1], [0, 16]]
    assert window_errors(fe).tolist() == [5, 8]  # mean over the features: the recipe's MSE


def test_mean_errors_average_over_steps():
    fe = feature_errors(X, X_HAT, "mean")
    np.testing.assert_allclose(fe, [[10 / 3, 5 / 3], [4 / 3, 20 / 3]])
    np.testing.assert_allclose(window_errors(fe), [2.5, 4.0])


def test_errors_do_not_depend_on_the_sign_of_the_difference():
    np.testing.assert_array_equal(feature_errors(X_HAT, X), feature_errors(X, X_HAT))


def test_bad_mode_and_shapes():
    with pytest.raises(UserError, match="choose one of last, mean"):
        feature_errors(X, X_HAT, "max")
    with pytest.raises(ValueError, match="same"):
        feature_errors(X, X_HAT[:, :2])


def small_model(run_dir, seed=0):
    """A real model.npz with random weights: 3 steps, 2 features."""
    arch = Architecture((4,), (4,), "tanh", 3, 2)
    rng = np.random.default_rng(seed)
    shapes = [shape for _, arrays in engine.weight_layout(arch) for shape in arrays.values()]
    engine.save_npz(run_dir / engine.MODEL_NPZ, arch, [rng.normal(0, 0.5, s).astype(np.float32) for s in shapes])


def windows(n=20, seed=1):
    X = np.random.default_rng(seed).normal(size=(n, 3, 2)).astype(np.float32)
    never = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    return Windows(X, np.zeros(n, dtype=np.int8), never, never)


@pytest.mark.parametrize("mode", ["last", "mean"])
def test_compute_errors_runs_the_model_of_the_run(tmp_path, mode):
    small_model(tmp_path)
    w = windows()
    window_err, feature_err = compute_errors(tmp_path, w, mode)
    X_hat = engine.load_model(tmp_path).predict(w.X)
    assert not np.allclose(X_hat, w.X)  # the errors below are not trivially zero
    np.testing.assert_array_equal(feature_err, feature_errors(w.X, X_hat, mode))
    np.testing.assert_array_equal(window_err, feature_err.mean(axis=1))
    assert window_err.shape == (20,) and feature_err.shape == (20, 2)


def test_a_model_returning_nan_is_a_user_error(tmp_path, monkeypatch):
    class Diverged:
        def predict(self, X):
            return np.full_like(X, np.nan)

    monkeypatch.setattr(reconstruction, "load_model", lambda run_dir, engine="numpy": Diverged())
    with pytest.raises(UserError, match="not finite"):
        compute_errors(tmp_path, windows(), "last")


def test_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="model.npz: not found"):
        compute_errors(tmp_path, windows(), "last")


def test_scoring_modules_import_neither_tensorflow_nor_sklearn(tmp_path, heavy_imports):
    small_model(tmp_path)
    assert heavy_imports("from lstm_rare_event import reconstruction; from lstm_rare_event.alarms import metrics, thresholds") == []

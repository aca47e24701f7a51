"""The NumPy forward pass against Keras, loading, bad model files, and scoring without TensorFlow."""


import numpy as np
import pytest

from lstm_rare_event.detectors.lstm_ae import engines
from lstm_rare_event.detectors.lstm_ae import numpy_engine as engine
from lstm_rare_event.detectors.lstm_ae.spec import Architecture, resolve
from lstm_rare_event.errors import UserError


NETWORKS = {
    "article": Architecture(*resolve("article"), 5, 59),
    "article-2019-05": Architecture(*resolve("article-2019-05"), 5, 59),
    "tanh": Architecture((4, 2), (3, 4, 6), "tanh", 3, 3),
    "single-layer": Architecture((6,), (6,), "relu", 4, 2),
}


def random_weights(arch, seed=0):
    """Weights in Keras' order and shapes: large enough that every gate matters, small enough
    that relu networks stay in range (at 0.4 the article network reaches outputs of 400)."""
    rng = np.random.default_rng(seed)
    shapes = [shape for _, arrays in engine.weight_layout(arch) for shape in arrays.values()]
    return [rng.normal(0, 0.2, shape).astype(np.float32) for shape in shapes]


def write_npz_model(run_dir, arch, seed=0):
    run_dir.mkdir(parents=True, exist_ok=True)
    engine.save_npz(run_dir / engine.MODEL_NPZ, arch, random_weights(arch, seed))


def inputs(arch, n=50, seed=1):
    return np.random.default_rng(seed).normal(0, 1, (n, arch.lookback, arch.n_features)).astype(np.float32)


@pytest.mark.parametrize("name", NETWORKS)
def test_numpy_engine_matches_keras_predict(tmp_path, name):
    from lstm_rare_event.detectors.lstm_ae.keras_model import build

    arch = NETWORKS[name]
    keras_model = build(arch)
    keras_model.set_weights(random_weights(arch))
    keras_model.save(tmp_path / engines.MODEL_KERAS)
    engine.save_npz(tmp_path / engine.MODEL_NPZ, arch, keras_model.get_weights())
    X = inputs(arch)

    ours = engines.load_model(tmp_path).predict(X, batch_size=7)  # uneven batches on purpose
    reference = engines.load_model(tmp_path, engine="keras").predict(X)
    assert ours.shape == X.shape and ours.dtype == np.float32
    assert np.abs(reference).max() > 0.1  # a real signal, not zeros matching zeros
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)


def test_batches_do_not_change_the_result(tmp_path):
    arch = NETWORKS["tanh"]
    write_npz_model(tmp_path, arch)
    model = engines.load_model(tmp_path)
    X = inputs(arch, n=23)
    np.testing.assert_array_equal(model.predict(X, batch_size=5), model.predict(X))
    assert model.predict(X[:0]).shape == (0, arch.lookback, arch.n_features)


def test_scoring_with_the_default_engine_never_imports_tensorflow(tmp_path, heavy_imports):
    arch = NETWORKS["article"]
    write_npz_model(tmp_path, arch)
    code = (
        "import numpy as np\n"
        "from lstm_rare_event.detectors.lstm_ae.engines import load_model\n"
        f"model = load_model({str(tmp_path)!r})\n"
        f"out = model.predict(np.zeros((10, {arch.lookback}, {arch.n_features}), np.float32))\n"
        "assert out.shape == (10, 5, 59)\n"
    )
    assert heavy_imports(code) == []


def test_missing_model_is_a_user_error_naming_the_file(tmp_path):
    for name, path in (("numpy", engines.MODEL_NPZ), ("keras", engines.MODEL_KERAS)):
        with pytest.raises(UserError, match=f"{path}: not found"):
            engines.load_model(tmp_path, engine=name)
    with pytest.raises(UserError, match="engine 'torch'"):
        engines.load_model(tmp_path, engine="torch")


def test_corrupt_and_foreign_npz_files_are_user_errors(tmp_path):
    path = tmp_path / engine.MODEL_NPZ
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(UserError, match=r"model\.npz: not a model\.npz written by train"):
        engines.load_model(tmp_path)

    np.savez(path, weights=np.zeros(3))  # some other program's arrays
    with pytest.raises(UserError, match=r"model\.npz: not a model\.npz written by train"):
        engines.load_model(tmp_path)

    arch = NETWORKS["tanh"]
    weights = random_weights(arch)
    weights[0] = weights[0][:, :-1]  # truncated kernel
    engine.save_npz(path, arch, weights)
    with pytest.raises(UserError, match="encoder_1 weights have shapes"):
        engines.load_model(tmp_path)


def test_corrupt_and_foreign_keras_files_are_user_errors(tmp_path):
    import keras

    path = tmp_path / engines.MODEL_KERAS
    path.write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"model\.keras: not a Keras model file") as info:
        engines.load_model(tmp_path, engine="keras")
    assert "\n" not in str(info.value)

    classifier = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)])
    classifier.save(path)
    with pytest.raises(UserError, match=r"model\.keras: not an autoencoder written by train"):
        engines.load_model(tmp_path, engine="keras")


def test_windows_of_the_wrong_shape_are_a_user_error(tmp_path):
    arch = NETWORKS["tanh"]
    write_npz_model(tmp_path, arch)
    with pytest.raises(UserError, match=r"model\.npz: the model expects windows of 3 x 3"):
        engines.load_model(tmp_path).predict(np.zeros((2, 3, 4), np.float32))


def test_read_architecture_without_keras(tmp_path):
    write_npz_model(tmp_path, NETWORKS["article-2019-05"])
    assert engine.read_architecture(tmp_path) == NETWORKS["article-2019-05"]

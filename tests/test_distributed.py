"""Training under tf.distribute: a one-machine MirroredStrategy and a two-worker cluster on 127.0.0.1."""

import json
import re

import numpy as np
import pytest

from lstm_rare_event import log
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.errors import UserError
from cluster import train_cluster

LOOKBACK, FEATURES = 5, 6
ARCH = Architecture((4, 2), (2, 4), "relu", LOOKBACK, FEATURES)
# Shared by the single-process run and the two workers, so the two can be compared.
OPTIONS = dict(epochs=2, batch_size=64, learning_rate=0.03, patience=0, seed=3)


def windows(n: int, seed: int) -> np.ndarray:
    """Noisy sine windows with a random phase and a fixed offset per feature: the untrained
    network's output is near zero, so even two epochs reduce the loss a lot (mostly the offsets)."""
    rng = np.random.default_rng(seed)
    t = np.arange(LOOKBACK)[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, FEATURES))
    offset = np.linspace(-1.0, 2.0, FEATURES)
    noise = 0.1 * rng.normal(size=(n, LOOKBACK, FEATURES))
    return (offset + np.sin(0.8 * t + phase) + noise).astype(np.float32)


X_TRAIN, X_VALID = windows(300, 1), windows(100, 2)  # 5 global batches, the last one partial


def mse(reconstruction, X) -> float:
    """Mean squared reconstruction error over all windows, after checking the reconstruction."""
    reconstruction = np.asarray(reconstruction, dtype=np.float64)
    assert reconstruction.shape == X.shape and np.isfinite(reconstruction).all()
    return float(np.mean((reconstruction - X) ** 2))


@pytest.fixture(scope="module")
def distributed():
    from lstm_rare_event.detectors.lstm_ae import distributed

    return distributed


@pytest.fixture(scope="module")
def single(distributed):
    """One process, MirroredStrategy (the CPU as its one replica), the options the workers use;
    returns the model, the history and the progress lines."""
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log, "info", lambda message, *args: lines.append(message % args))
        model, history = distributed.fit_distributed(
            distributed.make_strategy("mirrored"), ARCH, X_TRAIN, X_VALID, **OPTIONS)
    return model, history, lines


def test_mirrored_fit_reports_each_epoch(single):
    model, history, lines = single
    assert sorted(history) == ["loss", "seconds", "val_loss"]
    assert all(len(values) == OPTIONS["epochs"] for values in history.values())
    assert np.isfinite(history["loss"]).all() and np.isfinite(history["val_loss"]).all()
    assert history["val_loss"][-1] < history["val_loss"][0]  # it learns
    # The reported validation loss is the mean over all windows of the final weights.
    assert mse(model(X_VALID).numpy(), X_VALID) == pytest.approx(history["val_loss"][-1], rel=1e-4)
    assert [line[:10] for line in lines] == ["epoch 1/2 ", "epoch 2/2 "]
    assert re.fullmatch(r"epoch 2/2  loss \d+\.\d{5}  val_loss \d+\.\d{5}  \d+\.\d s", lines[1])


def test_early_stopping_restores_the_best_epoch(distributed):
    # Trained on windows of ones, validated on zeros: the untrained network maps zeros to
    # exactly zero, and every epoch moves its output further towards one, so the validation
    # loss rises after the first epoch and patience 1 stops after the second.
    ones, zeros = np.ones((128, LOOKBACK, FEATURES), np.float32), np.zeros((64, LOOKBACK, FEATURES), np.float32)
    model, history = distributed.fit_distributed(
        distributed.make_strategy("mirrored"), ARCH, ones, zeros,
        epochs=10, batch_size=64, learning_rate=0.01, patience=1, seed=0,
    )
    assert len(history["val_loss"]) == 2 and history["val_loss"][1] > history["val_loss"][0]
    assert mse(model(zeros).numpy(), zeros) == pytest.approx(history["val_loss"][0], rel=1e-4)


def test_tf_config_is_checked(distributed, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distributed.is_chief()
    with pytest.raises(UserError, match="needs the TF_CONFIG environment variable"):
        distributed.make_strategy("multi-worker")
    with pytest.raises(UserError, match="strategy 'ring'"):
        distributed.make_strategy("ring")
    for text, why in [("{", "not valid JSON"), ('{"cluster": {"worker": ["a:1"]}}', "no 'task'"),
                      ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}', "host:port"),
                      ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "index 1")]:
        monkeypatch.setenv("TF_CONFIG", text)
        with pytest.raises(UserError, match=f"TF_CONFIG: .*{why}.*expected JSON such as"):
            distributed.make_strategy("multi-worker")
    cluster = {"worker": ["a:1", "b:2"]}
    for task, chief in [({"type": "worker", "index": 0}, True), ({"type": "worker", "index": 1}, False)]:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        assert distributed.is_chief() is chief
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {**cluster, "chief": ["c:3"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert not distributed.is_chief()


def test_two_workers_train_one_model_and_only_the_chief_writes(tmp_path, demo_csv):
    """Two `train --distribute multi-worker` processes on 127.0.0.1, as on two machines: they
    end with the same model, only the chief writes its run directory, and the model is the one
    a single process trains with the same global batches (the mirrored strategy)."""
    from conftest import ok

    run = tmp_path / "run"
    ok("prepare", demo_csv, "--out", run, "--detrend", "0", "-q")
    train = ["train", str(run), "--encoder", "4,2", "--epochs", "2", "--batch-size", "64", "--learning-rate", "0.03",
             "--patience", "0", "--seed", "3", "-q", "--json"]
    ok(*train, "--distribute", "mirrored", "--out", tmp_path / "single")
    # 25 s on an idle machine; 167 s was seen beside other work on 2 cores (load 10): the timeout
    # only stops a cluster that hangs, so it is far above both
    codes = train_cluster(train, [tmp_path / f"worker-{i}" for i in range(2)],
                          [tmp_path / f"worker-{i}.err" for i in range(2)], timeout=900)
    errors = [(tmp_path / f"worker-{i}.err").read_text() for i in range(2)]
    assert codes == [0, 0], errors
    assert (tmp_path / "worker-0" / "detector" / "model.npz").exists()
    assert not (tmp_path / "worker-1").exists()  # the other worker writes nothing

    chief = json.loads((tmp_path / "worker-0" / "train.json").read_text())["detector"]
    alone = json.loads((tmp_path / "single" / "train.json").read_text())["detector"]
    # Both take the same global batches in the same order (the same shuffle seed; each worker
    # computes half of every batch), so they differ only in float32 summation order amplified
    # by a few Adam steps. 1% is far above that and far below what two epochs of training
    # change, so a worker that trained on other data or skipped synchronisation would fail.
    assert chief["epochs_run"] == alone["epochs_run"] == 2
    assert chief["final_val_loss"] == pytest.approx(alone["final_val_loss"], rel=0.01)

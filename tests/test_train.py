"""`train`: outputs of each detector, determinism, early-stopping bookkeeping, atomic writes
and bad input.

The trained runs come from conftest's session-scoped ``runs`` (a tiny autoencoder: encoder
4,2, 2 epochs); only one more Keras fit runs here (same seed, same weights), since
TensorFlow's tracing of each new model costs seconds.
"""

import json
import re
import shutil

import numpy as np
import pytest
from conftest import TINY_LSTM, copy_run, fails, invoke, ok

from lstm_rare_event.alarms import plots
from lstm_rare_event.detectors.lstm_ae import LstmOptions
from lstm_rare_event.detectors.lstm_ae import engines
from lstm_rare_event.detectors.lstm_ae import numpy_engine as engine
from lstm_rare_event.detectors.lstm_ae.detector import _training_summary
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import sha256_file
from lstm_rare_event.preprocess.windows import save_splits
from lstm_rare_event.run import DETECTOR, HISTORY_CSV, LOSS_PNG, ROWS_NPY, SPLIT_FILES, TRAIN_JSON, Run
from lstm_rare_event.steps.train import branch


def tiny_lstm_params(n_features):
    """Parameters of conftest's TINY_LSTM (encoder 4,2, decoder 2,4) worked out by hand:
    LSTM = 4 * (units * (inputs + units) + units), Dense = inputs * outputs + outputs."""
    F = n_features
    return 4 * (4 * (F + 4) + 4) + 4 * (2 * 6 + 2) + 4 * (2 * 4 + 2) + 4 * (4 * 6 + 4) + (4 * F + F)


def n_features(run_dir):
    return json.loads((run_dir / "prepare.json").read_text())["n_features"]


def model_arrays(run_dir):
    with np.load(run_dir / DETECTOR / engine.MODEL_NPZ, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def all_files(run_dir):
    return {str(p.relative_to(run_dir)): sha256_file(p) for p in run_dir.rglob("*") if p.is_file()}


def prepared_copy(source_dir, target_dir, **splits):
    """A prepared run with ``source_dir``'s prepare files, the windows of ``splits`` replaced."""
    source, target = Run(source_dir), Run(target_dir)
    with target.locked(create=True), source.reading():
        options = source.manifest()["steps"]["prepare"]["options"]
        with target.writer("prepare", options, inputs={}) as staged:
            for name in source.check("prepare"):
                staged.path(name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source.path / name, staged.path(name))
            # The replaced splits' windows are not cut from the source's rows: all are saved anew.
            every = {name: source.split(name) for name in SPLIT_FILES}
            every.update(splits)
            save_splits(staged.path(ROWS_NPY), {name: staged.path(SPLIT_FILES[name]) for name in every}, every)
    return target_dir


def test_train_writes_every_output(runs):
    run_dir = runs["lstm"]
    for name in ("detector/model.keras", "detector/model.npz", "detector/detector.json",
                 HISTORY_CSV, TRAIN_JSON, LOSS_PNG):
        assert (run_dir / name).stat().st_size > 0, name
    run = Run(run_dir)
    assert set(run.check("train")) >= {"detector/model.keras", "detector/model.npz", TRAIN_JSON}
    preprocessor = {n for n in run.files_of("prepare") if n.startswith("preprocessor/")}
    assert preprocessor and run.manifest()["steps"]["train"]["inputs"].keys() == {"train.npz", "valid.npz", "rows.npy", *preprocessor}

    history = (run_dir / HISTORY_CSV).read_text().splitlines()
    assert history[0] == "epoch,loss,val_loss,seconds" and len(history) == 3

    summary = json.loads((run_dir / TRAIN_JSON).read_text())["detector"]
    assert summary["detector"] == "lstm"
    assert summary["options"] == {
        "preset": None, "encoder": [4, 2], "decoder": [2, 4], "activation": "relu", "error": "mean", "epochs": 2,
        "batch_size": 64, "learning_rate": 0.003, "patience": 10, "seed": 123, "distribute": "none",
    }
    assert summary["epochs_run"] == 2 and summary["best_epoch"] in (1, 2)
    assert summary["params"] == tiny_lstm_params(n_features(run_dir)) == summary["architecture"]["params"]
    normal = {split: int((run.split(split).y == 0).sum()) for split in ("train", "valid")}
    assert summary["normal_windows"] == normal
    assert set(summary["versions"]) == {"tensorflow", "keras", "numpy", "lstm_rare_event"}
    assert summary["wall_seconds"] > 0


def test_same_seed_same_weights_and_out_gets_the_prepared_data(runs, tmp_path):
    run_dir, out = runs["lstm"], tmp_path / "other"
    result = ok("train", run_dir, *TINY_LSTM, "--out", out)
    assert "epoch 1/2  loss" in result.stderr and "epoch 2/2" in result.stderr
    assert re.search(rf"parameters\s+{tiny_lstm_params(n_features(run_dir)):,}\n", result.stdout)
    assert json.loads((out / TRAIN_JSON).read_text())["prepared_in"] == str(run_dir)

    ours, theirs = model_arrays(out), model_arrays(run_dir)
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    copied = Run(out)
    assert copied.check("prepare") == Run(run_dir).files_of("prepare")
    copied.check("train")
    assert not copied.has("threshold")  # only the prepared data comes along


def test_quiet_json_out_for_a_detector_without_training(runs, tmp_path):
    result = ok("train", runs["restart"], "--detector", "mahalanobis", "--out", tmp_path / "m", "--quiet", "--json")
    assert result.stderr == ""
    summary = json.loads(result.stdout)
    assert summary["prepared_in"] == str(runs["restart"])
    assert summary["detector"]["detector"] == "mahalanobis" and summary["fit_seconds"] >= 0


@pytest.mark.parametrize("name", ["mahalanobis", "restart"])
def test_detectors_without_training_write_no_history(runs, name):
    run_dir = runs[name]
    run = Run(run_dir)
    written = run.manifest()["steps"]["train"]["outputs"]
    assert TRAIN_JSON in written and "detector/detector.json" in written
    assert not {LOSS_PNG, HISTORY_CSV} & {*written, *(p.name for p in run_dir.iterdir())}
    assert not any(n.startswith("detector/model.") for n in written)
    assert ("detector/state.npz" in written) == (name == "mahalanobis")
    run.check("train")
    summary = json.loads((run_dir / TRAIN_JSON).read_text())
    assert summary["detector"]["detector"] == name and summary["detector"]["options"] == {}
    assert run.manifest()["steps"]["train"]["options"] == {"detector": name}
    assert run.detector().name == name


def test_trained_model_scores_the_same_with_both_engines(runs):
    run = Run(runs["lstm"])
    X = np.random.default_rng(5).normal(0, 1, (40, 5, n_features(run.path))).astype(np.float32)
    folder = run.path / DETECTOR
    np.testing.assert_allclose(engines.load_model(folder).predict(X), engines.load_model(folder, "keras").predict(X),
                               rtol=0, atol=1e-5)
    test = run.split("test")
    np.testing.assert_allclose(run.detector().score(test), run.detector(engine="keras").score(test),
                               rtol=1e-4, atol=1e-6)


def test_the_seed_sets_the_initial_weights():
    from lstm_rare_event.detectors.lstm_ae.keras_model import build, set_seed

    arch = Architecture((4, 2), (2, 4), "relu", 3, 3)
    weights = []
    for seed in (1, 1, 2):
        set_seed(seed)
        weights.append(build(arch).get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(weights[0], weights[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(weights[0], weights[2]))


def test_branch_copies_once_and_refuses_another_run(runs, tmp_path):
    source = Run(runs["mahalanobis"])

    def branch_into(path):
        target = Run(path)
        with target.locked(create=True), source.reading():
            branch(source, target)
        return Run(path).manifest()

    copied = branch_into(tmp_path / "other")
    assert copied["steps"]["prepare"]["options"] == source.manifest()["steps"]["prepare"]["options"]
    assert sorted(copied["files"]) == source.files_of("prepare")
    assert branch_into(tmp_path / "other") == copied  # again, as a second `train --out` does: nothing to copy

    stranger = Run(tmp_path / "stranger")
    with stranger.locked(create=True), stranger.writer("prepare", {"seed": 9}, inputs={}) as staged:
        staged.json("prepare.json", {"another": "run"})
    with pytest.raises(UserError, match="stranger: already holds files from another run"):
        branch_into(tmp_path / "stranger")


def test_interrupted_train_keeps_the_earlier_model(runs, tmp_path, monkeypatch):
    from lstm_rare_event.detectors.lstm_ae import keras_model

    run_dir = copy_run(runs["lstm"], tmp_path)
    before = all_files(run_dir)

    def quick_fit(net, *args, epochs, **kwargs):  # the Writer is under test, not Keras
        return {"loss": [1.0] * epochs, "val_loss": [1.0] * epochs, "seconds": [0.1] * epochs}

    def interrupt(*args, **kwargs):  # after the detector folder was written to staging
        raise KeyboardInterrupt

    monkeypatch.setattr(keras_model, "fit", quick_fit)
    monkeypatch.setattr(plots, "loss_curve", interrupt)
    result = invoke("train", run_dir, *TINY_LSTM, "--seed", "5")
    assert result.exit_code == 130
    assert "Interrupted; nothing was written." in result.stderr
    assert all_files(run_dir) == before  # no staging files left behind either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_summary_records_which_weights_were_kept():
    history = {"loss": [3.0, 2.0, 1.5, 1.4], "val_loss": [2.0, 1.0, 1.2, 1.3], "seconds": [0.5] * 4}
    arch = Architecture((4, 2), (2, 4), "relu", 3, 3)

    def tiny(**changes):
        return LstmOptions(encoder=(4, 2), decoder=(2, 4), **{"batch_size": 16, **changes})

    early = _training_summary(tiny(epochs=10, patience=2), arch, history, 62, 30, 2.0, {})
    assert (early["best_epoch"], early["best_val_loss"], early["weights_from_epoch"]) == (2, 1.0, 2)
    assert early["stopped_early"] and early["final_val_loss"] == 1.3 and early["params"] == 351
    recipe = _training_summary(tiny(epochs=4, patience=0), arch, history, 62, 30, 2.0, {})
    assert (recipe["weights_from_epoch"], recipe["stopped_early"]) == (4, False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--encoder", "32,x"], "--encoder '32,x': expected comma-separated layer sizes"),
        (["--encoder", "4,0"], "layer sizes must be positive"),
        (["--decoder", "-2"], "--decoder '-2'"),
        (["--epochs", "0"], "--epochs must be a positive integer"),
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--learning-rate", "0"], "--learning-rate must be a positive number"),
        (["--patience", "-1"], "--patience must be 0"),
        (["--seed", "-1"], "--seed must be between 0 and 4294967295"),
        (["--detector", "mahalanobis", "--epochs", "3"], "--epochs does not apply to --detector mahalanobis"),
        (["--detector", "restart", "--error", "last"], "--error does not apply to --detector restart"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    # Options are checked before the run directory is read: this one does not even exist.
    result = fails(2, "train", tmp_path / "run", *args, fragment=message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_run_dir_without_prepare_files(tmp_path):
    (tmp_path / "empty").mkdir()
    result = fails(2, "train", tmp_path / "empty", "--detector", "restart", fragment="no prepare results")
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_normal_training_windows(runs, tmp_path):
    train = Run(runs["mahalanobis"]).split("train")
    positives = train.subset(np.flatnonzero(train.y == 1))
    run_dir = prepared_copy(runs["mahalanobis"], tmp_path / "run", train=positives)
    # the autoencoder refuses before TensorFlow is even imported
    fails(2, "train", run_dir, *TINY_LSTM, fragment="no normal (y=0) windows to train the lstm detector on")
    fails(2, "train", run_dir, "--detector", "mahalanobis",
          fragment="the mahalanobis detector needs at least 2 normal training windows, got 0")
    assert not Run(run_dir).has("train")


def test_replaced_input_is_refused(runs, tmp_path):
    run_dir = copy_run(runs["mahalanobis"], tmp_path)
    shutil.copy2(run_dir / "test.npz", run_dir / "valid.npz")
    fails(2, "train", run_dir, "--detector", "mahalanobis",
          fragment="valid.npz: differs from the file this run wrote")

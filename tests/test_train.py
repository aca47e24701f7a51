"""`train`: outputs, determinism, early-stopping bookkeeping, atomic writes and bad input.

The networks are tiny (encoder 4,2 on 3 features, lookback 3, 2 epochs), and only two
trainings run (TensorFlow's tracing of each new model costs seconds); the rest reuses them.
"""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from lstm_rare_event.alarms import plots
from lstm_rare_event.detectors.lstm_ae import numpy_engine as engine
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.run import Writer, read_manifest, sha256_file, verify
from lstm_rare_event.cli import cli
from lstm_rare_event.errors import UserError
from lstm_rare_event.steps.train import TrainOptions, branch, summarize
from lstm_rare_event.preprocess.windows import Windows

LOOKBACK, FEATURES = 3, 3
TINY = ["--encoder", "4,2", "--epochs", "2", "--batch-size", "16"]


def windows(rng, n, positives=2):
    y = np.zeros(n, dtype=np.int8)
    y[:positives] = 1
    end = np.datetime64("2024-01-01T00:00:00", "s") + np.arange(n) * np.timedelta64(120, "s")
    event = np.where(y == 1, end + np.timedelta64(240, "s"), np.datetime64("NaT", "s"))
    return Windows(rng.normal(0, 1, (n, LOOKBACK, FEATURES)).astype(np.float32), y, end, event)


def make_prepared(run_dir, seed=0, normal_train=64):
    """What `prepare` writes, as far as `train` reads it: random windows and prepare.json.

    64 normal training and 32 normal validation windows fill batches of 16 exactly, which
    spares TensorFlow a second trace for a short last batch.
    """
    rng = np.random.default_rng(seed)
    with Writer(run_dir, step="prepare", options={"seed": seed}) as out:
        windows(rng, normal_train + 2).save(out.path("train.npz"))
        windows(rng, 34).save(out.path("valid.npz"))
        windows(rng, 34).save(out.path("test.npz"))
        out.json("prepare.json", {"features": [f"x{i}" for i in range(1, FEATURES + 1)], "lookback": LOOKBACK})
    return run_dir


def tiny(**changes):
    return TrainOptions.from_cli(encoder="4,2", **{"epochs": 2, "batch_size": 16, **changes})


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def model_arrays(run_dir):
    with np.load(run_dir / engine.MODEL_NPZ) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One prepared and trained run directory, shared by the tests that only read it."""
    run_dir = make_prepared(tmp_path_factory.mktemp("trained") / "run")
    result = run("train", run_dir, *TINY)
    assert result.exit_code == 0, result.output
    return run_dir, result


def test_train_writes_every_output(trained):
    run_dir, result = trained
    for name in ("model.keras", "model.npz", "history.csv", "train.json", "loss.png"):
        assert (run_dir / name).stat().st_size > 0, name
    verify(run_dir, ["model.keras", "model.npz", "train.json"])
    assert read_manifest(run_dir)["steps"]["train"]["inputs"].keys() == {"train.npz", "valid.npz", "prepare.json"}

    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,val_loss,seconds" and len(history) == 3

    summary = json.loads((run_dir / "train.json").read_text())
    assert summary["options"] == {
        "preset": None, "encoder": [4, 2], "decoder": [2, 4], "activation": "relu", "epochs": 2,
        "batch_size": 16, "learning_rate": 0.003, "patience": 10, "seed": 123,
    }
    assert summary["epochs_run"] == 2 and summary["best_epoch"] in (1, 2)
    assert summary["params"] == 4 * (4 * 7 + 4) + 4 * (2 * 6 + 2) + 4 * (2 * 4 + 2) + 4 * (4 * 6 + 4) + 15
    assert summary["normal_windows"] == {"train": 64, "valid": 32}
    assert set(summary["versions"]) == {"tensorflow", "keras", "numpy", "lstm_rare_event"}
    assert summary["wall_seconds"] > 0

    assert "epoch 1/2  loss" in result.stderr and "epoch 2/2" in result.stderr
    assert "parameters       351" in result.stdout


def test_trained_model_scores_the_same_with_both_engines(trained):
    run_dir, _ = trained
    X = np.random.default_rng(5).normal(0, 1, (40, LOOKBACK, FEATURES)).astype(np.float32)
    np.testing.assert_allclose(
        engine.load_model(run_dir).predict(X), engine.load_model(run_dir, "keras").predict(X), rtol=0, atol=1e-5
    )


def test_inspect_reads_a_trained_model(trained):
    run_dir, _ = trained
    result = run("inspect", run_dir, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"] == 351


def test_same_seed_same_weights_and_out_gets_the_prepared_data(trained, tmp_path):
    run_dir, _ = trained
    out = tmp_path / "other"
    result = run("train", run_dir, *TINY, "--out", out, "--quiet", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert json.loads(result.stdout)["prepared_in"] == str(run_dir)

    ours, theirs = model_arrays(out), model_arrays(run_dir)
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    verify(out, ["train.npz", "valid.npz", "test.npz", "prepare.json", "model.npz"])


def test_the_seed_sets_the_initial_weights():
    from lstm_rare_event.detectors.lstm_ae.keras_model import build, set_seed

    arch = Architecture((4, 2), (2, 4), "relu", LOOKBACK, FEATURES)
    weights = []
    for seed in (1, 1, 2):
        set_seed(seed)
        weights.append(build(arch).get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(weights[0], weights[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(weights[0], weights[2]))


def test_branch_copies_once_and_refuses_another_run(tmp_path):
    run_dir = make_prepared(tmp_path / "run")
    out = tmp_path / "other"
    branch(run_dir, out)
    copied = read_manifest(out)
    assert copied["steps"]["prepare"]["options"] == {"seed": 0}
    branch(run_dir, out)  # again, as a second `train --out` does: nothing to copy
    assert read_manifest(out) == copied

    stranger = make_prepared(tmp_path / "stranger", seed=9)
    with pytest.raises(UserError, match="stranger: already holds files from another run"):
        branch(run_dir, stranger)


def test_interrupted_train_keeps_the_earlier_model(trained, tmp_path, monkeypatch):
    from lstm_rare_event.detectors.lstm_ae import keras_model as model

    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    before = {path.name: sha256_file(path) for path in run_dir.iterdir()}

    def quick_fit(net, *args, epochs, **kwargs):  # the Writer is under test, not Keras
        return {"loss": [1.0] * epochs, "val_loss": [1.0] * epochs, "seconds": [0.1] * epochs}

    def interrupt(*args, **kwargs):  # after model.keras and model.npz were written to staging
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "fit", quick_fit)
    monkeypatch.setattr(plots, "loss_curve", interrupt)
    result = run("train", run_dir, *TINY, "--seed", "5")
    assert result.exit_code == 130
    assert "Interrupted; nothing was written." in result.stderr
    assert {path.name: sha256_file(path) for path in run_dir.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging folder left behind


def test_summary_records_which_weights_were_kept():
    history = {"loss": [3.0, 2.0, 1.5, 1.4], "val_loss": [2.0, 1.0, 1.2, 1.3], "seconds": [0.5] * 4}
    arch = Architecture((4, 2), (2, 4), "relu", LOOKBACK, FEATURES)
    early = summarize(tiny(epochs=10, patience=2), arch, history, 62, 30, 2.0, {})
    assert (early["best_epoch"], early["best_val_loss"], early["weights_from_epoch"]) == (2, 1.0, 2)
    assert early["stopped_early"] and early["final_val_loss"] == 1.3
    recipe = summarize(tiny(epochs=4, patience=0), arch, history, 62, 30, 2.0, {})
    assert (recipe["weights_from_epoch"], recipe["stopped_early"]) == (4, False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--encoder", "32,x"], "--encoder '32,x': expected comma-separated layer sizes"),
        (["--encoder", "4,0"], "layer sizes must be positive"),
        (["--decoder", "-2"], "--decoder '-2'"),
        (["--epochs", "0"], "--epochs must be a positive integer"),
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--learning-rate", "0"], "--learning-rate must be positive"),
        (["--patience", "-1"], "--patience must be 0"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    run_dir = make_prepared(tmp_path / "run")
    result = run("train", run_dir, *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_run_dir_without_prepare_files(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("train", tmp_path / "empty")
    assert result.exit_code == 2
    assert "missing train.npz, valid.npz, prepare.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_normal_training_windows(tmp_path):
    run_dir = make_prepared(tmp_path / "run", normal_train=0)
    result = run("train", run_dir, *TINY)
    assert result.exit_code == 2
    assert "train.npz: no normal (y=0) windows to train on" in result.stderr


def test_replaced_input_is_refused(tmp_path):
    run_dir = make_prepared(tmp_path / "run")
    windows(np.random.default_rng(3), 34).save(run_dir / "valid.npz")
    result = run("train", run_dir, *TINY)
    assert result.exit_code == 2
    assert "valid.npz: differs from the file this run wrote" in result.stderr

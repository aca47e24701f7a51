"""`inspect`: the layer table for both presets, JSON, trained runs of each kind, bad input,
no TensorFlow."""

import json

import pytest
from conftest import copy_run, invoke

from lstm_rare_event.detectors.lstm_ae import numpy_engine as engine
from lstm_rare_event.detectors.lstm_ae.spec import count_params
from lstm_rare_event.run import DETECTOR


ARTICLE = """\
layer      kind                        output shape  params
input      Input                       (5, 59)            0
encoder_1  LSTM(32)                    (5, 32)       11,776
encoder_2  LSTM(16)                    (16,)          3,136  <- latent vector
repeat     RepeatVector(5)             (5, 16)            0
decoder_1  LSTM(16)                    (5, 16)        2,112
decoder_2  LSTM(32)                    (5, 32)        6,272
output     TimeDistributed(Dense(59))  (5, 59)        1,947
total                                                25,243

activation relu; compression: input 5 x 59 = 295 values -> latent 16 values (18.4 : 1)
The bottleneck is the latent vector: the final output of the last encoder layer, LSTM(16),
16 values per window. Per-step widths such as 32 are not the bottleneck: each step keeps a
32-wide state, but only the last encoder layer's final output is passed on, and
RepeatVector copies it 5 times without adding information.
"""

ARTICLE_2019_05 = """\
layer      kind                        output shape  params
input      Input                       (5, 59)            0
encoder_1  LSTM(5)                     (5, 5)         1,300
encoder_2  LSTM(16)                    (5, 16)        1,408
encoder_3  LSTM(1)                     (1,)              72  <- latent vector
repeat     RepeatVector(5)             (5, 1)             0
decoder_1  LSTM(5)                     (5, 5)           140
decoder_2  LSTM(16)                    (5, 16)        1,408
output     TimeDistributed(Dense(59))  (5, 59)        1,003
total                                                 5,331

activation relu; compression: input 5 x 59 = 295 values -> latent 1 value (295.0 : 1)
The bottleneck is the latent vector: the final output of the last encoder layer, LSTM(1),
1 value per window. Per-step widths such as 5 -> 16 are not the bottleneck: each step
keeps a 16-wide state, but only the last encoder layer's final output is passed on, and
RepeatVector copies it 5 times without adding information.
"""


def run(*args):
    return invoke("inspect", *args)


def test_article_preset():
    result = run("--arch", "article", "--lookback", 5, "--features", 59)
    assert result.exit_code == 0, result.output
    assert result.stdout == ARTICLE


def test_article_2019_05_preset_and_its_spelled_out_layers():
    preset = run("--arch", "article-2019-05", "--lookback", 5, "--features", 59)
    assert preset.exit_code == 0, preset.output
    assert preset.stdout == ARTICLE_2019_05
    spelled = run("--encoder", "5,16,1", "--decoder", "5,16", "--lookback", 5, "--features", 59)
    assert spelled.stdout == ARTICLE_2019_05


def test_encoder_alone_mirrors_into_the_decoder():
    result = run("--encoder", "5,16,1", "--lookback", 5, "--features", 59, "--json")
    data = json.loads(result.stdout)
    assert data["architecture"]["decoder"] == [1, 16, 5]
    assert data["compression"] == "input 5 x 59 = 295 values -> latent 1 value (295.0 : 1)"


def test_json_for_machines():
    result = run("--lookback", 5, "--features", 59, "--activation", "tanh", "--json")
    data = json.loads(result.stdout)
    assert data["params"] == 25_243 and data["latent_values"] == 16
    assert data["compression_ratio"] == 18.438
    assert data["architecture"]["activation"] == "tanh"
    assert [layer["name"] for layer in data["layers"] if layer["latent"]] == ["encoder_2"]
    assert data["layers"][2]["output_shape"] == [16]


def test_lstm_run_prints_its_layer_table(runs):
    run_dir = runs["lstm"]
    arch = engine.read_architecture(run_dir / DETECTOR)
    assert (arch.encoder, arch.decoder, arch.activation) == ((4, 2), (2, 4), "relu")  # conftest's TINY_LSTM
    result = run(run_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("layer      kind")
    assert "encoder_2  LSTM(2)" in result.stdout and "<- latent vector" in result.stdout
    assert ["total", f"{count_params(arch):,}"] in [line.split() for line in result.stdout.splitlines()]
    assert "activation relu" in result.stdout

    data = json.loads(run(run_dir, "--json").stdout)
    assert data["detector"] == "lstm" and data["params"] == count_params(arch)
    assert data["architecture"]["architecture"] == arch.to_dict()
    assert data["options"]["encoder"] == [4, 2]


def test_mahalanobis_run_says_what_the_detector_is(runs):
    result = run(runs["mahalanobis"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("mahalanobis detector: squared Mahalanobis distance")
    assert "layer" not in result.stdout and "LSTM" not in result.stdout and "params" not in result.stdout

    data = json.loads(run(runs["mahalanobis"], "--json").stdout)
    assert data["detector"] == "mahalanobis" and "Mahalanobis distance" in data["summary"]
    assert "layers" not in data and "architecture" not in data


def assert_one_line_error(result, message):
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_bad_input_is_a_one_line_error(tmp_path, runs):
    assert_one_line_error(run("--encoder", "32,x", "--lookback", 5, "--features", 59), "--encoder '32,x'")
    assert_one_line_error(run("--encoder", "32,0", "--lookback", 5, "--features", 59), "must be positive")
    assert_one_line_error(run("--lookback", 0, "--features", 59), "lookback must be a positive integer")
    assert_one_line_error(run("--lookback", 5, "--features", -3), "feature count must be a positive integer")
    assert_one_line_error(run("--encoder", "4"), "needs RUN_DIR (a trained detector) or --lookback and --features")
    assert_one_line_error(run(tmp_path, "--encoder", "4"), "not both")
    assert_one_line_error(run(tmp_path), "no train results")
    broken = copy_run(runs["lstm"], tmp_path)
    (broken / DETECTOR / engine.MODEL_NPZ).write_text("{}")
    assert_one_line_error(run(broken), "detector/model.npz: differs from the file this run wrote")


@pytest.mark.parametrize("args", [["--lookback", "5", "--features", "59"], ["RUN"]])
def test_inspect_never_imports_tensorflow(heavy_imports, runs, args):
    args = [str(runs["lstm"]) if a == "RUN" else a for a in args]
    code = (
        "from lstm_rare_event.cli import cli\n"
        "try:\n"
        f"    cli(['inspect', *{args!r}])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
    )
    assert not {"tensorflow", "keras"} & set(heavy_imports(code))

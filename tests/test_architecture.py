"""Spec parsing, presets, the layer table and parameter counts (TensorFlow only for the cross-check)."""

import pytest

from lstm_rare_event.detectors.lstm_ae.spec import (
    Architecture,
    compression_text,
    count_params,
    describe,
    layers,
    parse_units,
    resolve,
)
from lstm_rare_event.errors import UserError


def preset(name, lookback=5, n_features=59):
    return Architecture(*resolve(name), lookback, n_features)


# (encoder, decoder, activation, lookback, features) -> parameters, worked out by hand with
# LSTM = 4 * (units * (inputs + units) + units) and Dense = inputs * outputs + outputs.
HAND_COUNTED = [
    # 11,776 + 3,136 + 2,112 + 6,272 + 1,947
    (((32, 16), (16, 32), "relu", 5, 59), 25_243),
    # 1,300 + 1,408 + 72 + 140 + 1,408 + 1,003
    (((5, 16, 1), (5, 16), "relu", 5, 59), 5_331),
    # 128 + 56 + 40 + 112 + 15
    (((4, 2), (2, 4), "tanh", 3, 3), 351),
    # 608 + 544 + 90
    (((8,), (8,), "relu", 4, 10), 1_242),
]


@pytest.mark.parametrize("spec, expected", HAND_COUNTED)
def test_parameter_counts_match_hand_computed_numbers(spec, expected):
    assert count_params(Architecture(*spec)) == expected


def test_presets_are_the_articles_networks():
    assert resolve("article") == ((32, 16), (16, 32), "relu")
    assert resolve("article-2019-05") == ((5, 16, 1), (5, 16), "relu")
    assert resolve() == resolve("article")
    assert count_params(preset("article")) == 25_243
    assert count_params(preset("article-2019-05")) == 5_331


def test_layer_table_of_the_article_preset():
    table = [(layer.name, layer.output_shape, layer.params, layer.latent) for layer in layers(preset("article"))]
    assert table == [
        ("input", (5, 59), 0, False),
        ("encoder_1", (5, 32), 11_776, False),
        ("encoder_2", (16,), 3_136, True),
        ("repeat", (5, 16), 0, False),
        ("decoder_1", (5, 16), 2_112, False),
        ("decoder_2", (5, 32), 6_272, False),
        ("output", (5, 59), 1_947, False),
    ]


def test_latent_vector_of_the_2019_05_preset_is_one_number():
    arch = preset("article-2019-05")
    latent = [layer for layer in layers(arch) if layer.latent]
    assert [(layer.name, layer.output_shape) for layer in latent] == [("encoder_3", (1,))]
    assert compression_text(arch) == "input 5 x 59 = 295 values -> latent 1 value (295.0 : 1)"


def test_compression_text_of_the_article_preset():
    assert compression_text(preset("article")) == "input 5 x 59 = 295 values -> latent 16 values (18.4 : 1)"


def test_explicit_encoder_gets_a_mirrored_decoder_and_overrides_the_preset():
    assert resolve("article-2019-05", encoder="8,4,2") == ((8, 4, 2), (2, 4, 8), "relu")
    assert resolve(encoder="8,4", decoder="4,4,8", activation="tanh") == ((8, 4), (4, 4, 8), "tanh")
    assert resolve("article", activation="tanh") == ((32, 16), (16, 32), "tanh")


@pytest.mark.parametrize("text", ["32,x", "32,,16", "", "0", "16,-1", "1.5"])
def test_bad_unit_lists_are_user_errors_naming_the_option(text):
    with pytest.raises(UserError, match="--encoder"):
        resolve(encoder=text)


def test_bad_sizes_and_names_are_user_errors():
    with pytest.raises(UserError, match="lookback"):
        Architecture((4,), (4,), "relu", 0, 3)
    with pytest.raises(UserError, match="feature count"):
        Architecture((4,), (4,), "relu", 3, -1)
    with pytest.raises(UserError, match="activation"):
        Architecture((4,), (4,), "sigmoid", 3, 3)
    with pytest.raises(UserError, match="unknown preset"):
        resolve("article-2020")


def test_parse_units():
    assert parse_units(" 32, 16 ") == (32, 16)


def test_describe_round_trips_the_architecture():
    arch = preset("article")
    data = describe(arch)
    assert Architecture.from_dict(data["architecture"]) == arch
    assert data["params"] == 25_243 and data["latent_values"] == 16 and data["input_values"] == 295
    assert sum(layer["params"] for layer in data["layers"]) == data["params"]


@pytest.mark.parametrize("spec", [spec for spec, _ in HAND_COUNTED] + [((3, 7, 2), (6,), "tanh", 2, 5)])
def test_counts_and_shapes_equal_keras(spec):
    from lstm_rare_event.detectors.lstm_ae.keras_model import build

    arch = Architecture(*spec)
    model = build(arch)
    assert model.count_params() == count_params(arch)
    ours = [(layer.name, layer.output_shape, layer.params) for layer in layers(arch)[1:]]
    theirs = [(layer.name, tuple(layer.output.shape[1:]), layer.count_params()) for layer in model.layers]
    assert ours == theirs

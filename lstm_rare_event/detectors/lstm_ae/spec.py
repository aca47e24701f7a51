"""The autoencoder's shape as plain data: spec parsing, presets, layer table and parameter counts.

Nothing here imports TensorFlow, so ``inspect`` answers instantly and the NumPy engine can
rebuild the network from a saved config. The network is always

    Input(lookback, F) -> LSTM(e1, seq) ... -> LSTM(e_last) -> RepeatVector(lookback)
    -> LSTM(d1, seq) ... -> LSTM(d_last, seq) -> TimeDistributed(Dense(F))

and the latent vector is the final output of the last encoder LSTM.
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass

from lstm_rare_event.errors import UserError
from lstm_rare_event.tables import format_table

ACTIVATIONS = ("relu", "tanh")

# name -> (encoder, decoder, activation); the decoders are the ones the articles used.
PRESETS = {
    "article": ((32, 16), (16, 32), "relu"),
    "article-2019-05": ((5, 16, 1), (5, 16), "relu"),
}
DEFAULT_PRESET = "article"


@dataclass(frozen=True)
class Architecture:
    encoder: tuple[int, ...]
    decoder: tuple[int, ...]
    activation: str
    lookback: int
    n_features: int

    def __post_init__(self):
        if not self.encoder or not self.decoder:
            raise UserError("the encoder and the decoder need at least one LSTM layer each")
        for what, value in (("lookback", self.lookback), ("feature count", self.n_features)):
            if value < 1:
                raise UserError(f"{what} must be a positive integer, got {value}")
        if self.activation not in ACTIVATIONS:
            raise UserError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def latent_size(self) -> int:
        return self.encoder[-1]

    @property
    def input_size(self) -> int:
        return self.lookback * self.n_features

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Architecture":
        return cls(
            encoder=tuple(int(u) for u in data["encoder"]),
            decoder=tuple(int(u) for u in data["decoder"]),
            activation=str(data["activation"]),
            lookback=int(data["lookback"]),
            n_features=int(data["n_features"]),
        )


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    output_shape: tuple[int, ...]  # without the batch axis
    params: int
    latent: bool = False


def parse_units(text: str, option: str = "--encoder") -> tuple[int, ...]:
    """``"32,16"`` -> ``(32, 16)``; the option name goes into the error message."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        units = tuple(int(p) for p in parts)
    except ValueError:
        raise UserError(f"{option} {text!r}: expected comma-separated layer sizes such as 32,16") from None
    if any(u < 1 for u in units):
        raise UserError(f"{option} {text!r}: layer sizes must be positive integers")
    return units


def resolve(preset=None, encoder=None, decoder=None, activation=None) -> tuple[tuple, tuple, str]:
    """Encoder, decoder and activation from a preset with explicit options taking precedence.

    An explicit encoder without a decoder gets the encoder mirrored, not the preset's decoder,
    which belongs to the preset's own encoder.
    """
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise UserError(f"--arch {name!r}: unknown preset; choose one of {', '.join(PRESETS)}")
    enc, dec, act = PRESETS[name]
    if encoder is not None:
        enc = parse_units(encoder, "--encoder")
        dec = tuple(reversed(enc))
    if decoder is not None:
        dec = parse_units(decoder, "--decoder")
    return enc, dec, activation or act


def lstm_params(n_in: int, units: int) -> int:
    # four gates, each with input weights, recurrent weights and a bias
    return 4 * (units * (n_in + units) + units)


def dense_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def layers(arch: Architecture) -> list[Layer]:
    """Every layer with its output shape and parameter count, in Keras' order."""
    T, F = arch.lookback, arch.n_features
    table = [Layer("input", "Input", (T, F), 0)]
    width = F
    for i, units in enumerate(arch.encoder, 1):
        last = i == len(arch.encoder)
        shape = (units,) if last else (T, units)
        table.append(Layer(f"encoder_{i}", f"LSTM({units})", shape, lstm_params(width, units), latent=last))
        width = units
    table.append(Layer("repeat", f"RepeatVector({T})", (T, width), 0))
    for i, units in enumerate(arch.decoder, 1):
        table.append(Layer(f"decoder_{i}", f"LSTM({units})", (T, units), lstm_params(width, units)))
        width = units
    table.append(Layer("output", f"TimeDistributed(Dense({F}))", (T, F), dense_params(width, F)))
    return table


def count_params(arch: Architecture) -> int:
    return sum(layer.params for layer in layers(arch))


def spec_text(arch: Architecture) -> str:
    """``encoder 32,16 / decoder 16,32, relu``: the network in the command line's terms."""
    units = {part: ",".join(str(u) for u in getattr(arch, part)) for part in ("encoder", "decoder")}
    return f"encoder {units['encoder']} / decoder {units['decoder']}, {arch.activation}"


def compression_ratio(arch: Architecture) -> float:
    return arch.input_size / arch.latent_size


def compression_text(arch: Architecture) -> str:
    latent = arch.latent_size
    return (
        f"input {arch.lookback} x {arch.n_features} = {arch.input_size} values -> "
        f"latent {latent} value{'s' if latent != 1 else ''} ({compression_ratio(arch):.1f} : 1)"
    )


def bottleneck_text(arch: Architecture) -> str:
    """Why the latent vector, not the widths of the layers before it, is the bottleneck."""
    latent = arch.latent_size
    head = (
        f"The bottleneck is the latent vector: the final output of the last encoder layer, "
        f"LSTM({latent}), {latent} value{'s' if latent != 1 else ''} per window."
    )
    earlier = arch.encoder[:-1]
    if not earlier:
        return head + f" RepeatVector copies it {arch.lookback} times without adding information."
    widths = " -> ".join(str(u) for u in earlier)
    return head + (
        f" Per-step widths such as {widths} are not the bottleneck: each step keeps a "
        f"{max(earlier)}-wide state, but only the last encoder layer's final output is passed on, "
        f"and RepeatVector copies it {arch.lookback} times without adding information."
    )


def describe(arch: Architecture) -> dict:
    """Everything ``inspect`` reports, as JSON-ready data."""
    return {
        "architecture": arch.to_dict(),
        "layers": [
            {
                "name": layer.name,
                "kind": layer.kind,
                "output_shape": list(layer.output_shape),
                "params": layer.params,
                "latent": layer.latent,
            }
            for layer in layers(arch)
        ],
        "params": count_params(arch),
        "input_values": arch.input_size,
        "latent_values": arch.latent_size,
        "compression_ratio": round(compression_ratio(arch), 3),
        "compression": compression_text(arch),
        "bottleneck": bottleneck_text(arch),
    }


def format_text(arch: Architecture) -> str:
    """The layer table, the total and the compression as text for people."""
    rows = [["layer", "kind", "output shape", "params", ""]]
    for layer in layers(arch):
        rows.append([layer.name, layer.kind, str(layer.output_shape), layer.params,
                     "<- latent vector" if layer.latent else ""])
    rows.append(["total", "", "", count_params(arch), ""])
    return "\n".join([
        format_table(rows),
        "",
        f"activation {arch.activation}; compression: {compression_text(arch)}",
        textwrap.fill(bottleneck_text(arch), width=90),
    ])

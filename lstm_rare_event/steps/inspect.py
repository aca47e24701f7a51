"""The ``inspect`` step: what a run's detector is, without TensorFlow."""

from __future__ import annotations

from lstm_rare_event.detectors.lstm_ae import spec
from lstm_rare_event.run import DETECTOR, Run


def inspect_architecture(options: dict, lookback: int, n_features: int) -> tuple[dict, str]:
    arch = spec.Architecture(*spec.resolve(**options), lookback, n_features)
    return spec.describe(arch), spec.format_text(arch)


def inspect_run(run_dir, allow_pickle: bool = False) -> tuple[dict, str]:
    """(JSON-ready description, text) of the detector in ``run_dir``."""
    run = Run(run_dir)
    with run.reading():
        run.check("train", [DETECTOR])
        detector = run.detector(allow_pickle=allow_pickle)
    return detector.describe(), detector.describe_text()

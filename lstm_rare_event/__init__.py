"""Predict rare events in multivariate sensor time series with an LSTM autoencoder.

``from lstm_rare_event import Pipeline``: the fitted pipeline of the Python API
(:mod:`lstm_rare_event.pipeline`), imported on first use so that ``import lstm_rare_event``
stays light (no NumPy, pandas or TensorFlow until asked for).
"""

from lstm_rare_event.version import __version__

__all__ = ["Pipeline", "__version__"]


def __getattr__(name: str):
    if name == "Pipeline":
        from lstm_rare_event.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'lstm_rare_event' has no attribute {name!r}")

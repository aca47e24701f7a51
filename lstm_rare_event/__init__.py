"""Predict rare events in multivariate sensor time series with an LSTM autoencoder."""

__version__ = "0.1.0"

"""detectors/lstm_ae"""

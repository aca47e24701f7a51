from lstm_rare_event.detectors.lstm_ae.detector import ERROR_MODES, LstmDetector, LstmOptions

__all__ = ["ERROR_MODES", "LstmDetector", "LstmOptions"]

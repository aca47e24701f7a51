from lstm_rare_event.detectors.lstm_ae.detector import DISTRIBUTE, ERROR_MODES, LstmDetector, LstmOptions

__all__ = ["DISTRIBUTE", "ERROR_MODES", "LstmDetector", "LstmOptions"]

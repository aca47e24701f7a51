"""How recently the machine restarted after cut-out downtime; no sensor at all.

Breaks tend to follow restarts, so a model that cannot beat this has learnt little more
than "the machine just came back". The score is 1 / (1 + minutes since the restart): 1 at a
restart, falling towards 0. The restart time of each window comes with it from the
preprocessor (``Windows.segment_start``), so no second read of the CSV is needed.
"""

from __future__ import annotations

import numpy as np

from lstm_rare_event.detectors.base import Detector
from lstm_rare_event.preprocess.windows import Windows


class RestartDetector(Detector):
    name = "restart"
    summary = ("1 / (1 + minutes since the last restart after downtime) at each window's end; "
               "uses no sensor, so it names none behind an alarm")
    names_sensors = False

    def fit(self, train: Windows, valid: Windows | None = None) -> "RestartDetector":
        self.n_features_ = train.X.shape[2]
        return self

    def explain(self, windows: Windows) -> tuple[np.ndarray, None]:
        minutes = (windows.end_time - windows.segment_start) / np.timedelta64(1, "m")
        return 1.0 / (1.0 + np.asarray(minutes, dtype=np.float64)), None

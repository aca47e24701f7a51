"""How recently the machine restarted after cut-out downtime; no sensor at all.

Breaks tend to follow restarts, so a model that cannot beat this has learnt little more
than "the machine just came back". The score is 1 / (1 + minutes since the restart): 1 at a
restart, falling towards 0. The restart time of each window comes with it from the
preprocessor (``Windows.segment_start``), so no second read of the CSV is needed.
"""

from __future__ import annotations

import numpy as np

from lstm_rare_event.detectors.base import Detector
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.windows import Windows


class RestartDetector(Detector):
    name = "restart"
    summary = ("1 / (1 + minutes since the last restart after downtime) at each window's end; "
               "uses no sensor, so it names none behind an alarm")
    names_sensors = False

    def fit_windows(self, train: Windows, valid: Windows | None = None) -> "RestartDetector":
        _check_times(train)
        self.n_features_ = train.X.shape[2]
        return self

    def explain_windows(self, windows: Windows) -> tuple[np.ndarray, None]:
        _check_times(windows)
        minutes = (windows.end_time - windows.segment_start) / np.timedelta64(1, "m")
        return 1.0 / (1.0 + np.asarray(minutes, dtype=np.float64)), None


def _check_times(windows: Windows) -> None:
    if len(windows) and np.isnat(windows.segment_start).any():
        raise UserError("the restart detector scores the time since a restart, which windows given as an array "
                        "do not carry; use windows of a run (the preprocessor's) or the Pipeline")

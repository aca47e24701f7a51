"""The state file of ``score --state``: what one call hands the next.

JSON with the arrays base64 npz (never pickle): the carried raw rows (:class:`.engine.Carry`),
the open alarm episode, the run it was written with (its path, a fingerprint of its files, its
detector and threshold), the runs it was adopted from (``adopted``: from which run to which,
when, and after which window, so that every window of the output can be told the run that
scored it) and the output's length after the call's append (so that a call killed between the
append and the state write is undone by the next one).
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import numpy as np

from lstm_rare_event.alarms.rule import OpenEpisode
from lstm_rare_event.alerts.watch import Watch
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.csv import Table
from lstm_rare_event.scoring.engine import Carry, ScoreOptions, Scorer

STATE_FORMAT = "lstm-rare-event/score-state/1"


def _pack(**arrays) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v for k, v in arrays.items() if v is not None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def time_or_none(value):
    return None if value is None else str(np.datetime64(value, "s"))


def state_json(carry: Carry, scorer: Scorer, run_dir, output: dict, watch: Watch) -> dict:
    """The state after a call: ``carry`` of ``scorer``'s run in ``run_dir``, ``output`` the
    output file's record (path, length in bytes), ``watch`` what alerting keeps."""
    tail = carry.tail
    arrays = {} if tail is None else dict(time=tail.time.astype(np.int64), values=tail.values, y=tail.y,
                                          utc_offset=tail.utc_offset, held=carry.held)
    return {
        "format": STATE_FORMAT,
        "run": {"path": str(Path(run_dir).resolve()), "fingerprint": scorer.fingerprint,
                "detector": scorer.detector.name, "threshold": scorer.rule.value},
        "adopted": list(carry.adopted),
        "features": list(scorer.preprocessor.features_),
        "last_row": time_or_none(carry.last_time),
        "last_scored": time_or_none(carry.last_scored),
        "episode": {"last_id": carry.episode.number, "start": time_or_none(carry.episode.start),
                    "last_flagged": time_or_none(carry.episode.last)},
        "rows": carry.rows,
        "windows": carry.windows,
        "output": output,
        "history": {"rows": 0 if tail is None else len(tail), "segment_start": time_or_none(carry.tail_start),
                    "arrays": _pack(**arrays) if arrays else None},
        "alerts": watch.as_json(),
    }


def read_state(path: Path, scorer: Scorer, run_dir, options: ScoreOptions) -> tuple[Carry, dict, Watch]:
    """The carry, the output record and the alerting saved in ``path``, refused when malformed
    or written with another run (unless ``options.adopt``)."""
    def broken(what):
        return UserError(f"{path}: not a score state written by this tool ({what}); move it away to start a new one")

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise broken(f"{type(exc).__name__}: {exc}") from None
    try:
        if data["format"] != STATE_FORMAT:
            raise broken(f"format {data['format']!r}")
        features = list(scorer.preprocessor.features_)
        adopted = tuple(data.get("adopted", ()))
        if data["run"]["fingerprint"] != scorer.fingerprint:
            adopted = (*adopted, _adoption(path, data, scorer, run_dir, options))[-ADOPTIONS_KEPT:]
        t = lambda v: None if v is None else np.datetime64(v, "s")  # noqa: E731
        carry = Carry(last_time=t(data["last_row"]), last_scored=t(data["last_scored"]),
                      episode=OpenEpisode(int(data["episode"]["last_id"]), t(data["episode"]["start"]),
                                          t(data["episode"]["last_flagged"])), rows=int(data["rows"]),
                      windows=int(data["windows"]), tail_start=t(data["history"]["segment_start"]), adopted=adopted)
        packed = data["history"]["arrays"]
        if packed is not None:
            with np.load(io.BytesIO(base64.b64decode(packed)), allow_pickle=False) as arrays:
                a = {k: arrays[k] for k in arrays.files}
            carry.tail = Table(a["time"].astype("datetime64[s]"), a["values"].astype(np.float64), features,
                               a.get("y"), a.get("utc_offset"))
            carry.held = a["held"].astype(bool)
            if carry.tail.values.shape != (len(carry.tail), len(features)) or len(carry.held) != len(carry.tail):
                raise broken("history arrays of the wrong shape")
        output = dict(data["output"])
        # A state from before alerting was tracked starts with nothing told.
        watch = Watch.start(data.get("alerts"), str(run_dir), scorer.rule.merge_minutes, options.clear_minutes)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
        raise broken(f"{type(exc).__name__}: {exc}") from None
    return carry, output, watch


#: adoptions a state remembers: a month of nightly retrains
ADOPTIONS_KEPT = 31


def _adoption(path: Path, data: dict, scorer: Scorer, run_dir, options: ScoreOptions) -> dict:
    """The record of carrying the state ``data`` (of another run) over to ``scorer``'s run, or
    the one-line refusal: without --adopt, and across detectors or sensors even with it (their
    rows, scores and episodes mean something else)."""
    before = data["run"]
    if not options.adopt:
        raise UserError(
            f"{path}: written with another run ({before['path']}): its detector, preprocessor or "
            f"threshold differ from {run_dir}'s (a retrain or another run); pass --adopt to carry its rows "
            "and open episode over to this run, or move the state away to start a new one")
    detector = scorer.detector.name
    if before.get("detector") != detector:
        written = f"a {before['detector']} run" if before.get("detector") else "a run it does not name"
        raise UserError(f"{path}: written with {written} ({before['path']}), {run_dir} is a {detector} run; "
                        "--adopt carries a state only to a run of the same detector: move it away to start a new one")
    if data["features"] != list(scorer.preprocessor.features_):
        raise UserError(f"{path}: written for other sensors than {run_dir}'s; move it away to start a new one")
    # The earlier run's threshold, so that a figure can draw each run's over its own windows.
    return {"from": before["path"], "fingerprint": before["fingerprint"], "threshold": before.get("threshold"),
            "to": str(Path(run_dir).resolve()), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "after": data["last_scored"]}

"""The state file of ``score --state``: what one call hands the next.

JSON with the arrays base64 npz (never pickle): the carried raw rows (:class:`.engine.Carry`),
the open alarm episode, the run it was written with (a fingerprint of its files) and the
output file's record: its path, identity and length after the call's append (so that a call
killed between the append and the state write is undone by the next one).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

from lstm_rare_event.alarms.rule import OpenEpisode
from lstm_rare_event.alerts.watch import Watch
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.csv import Table
from lstm_rare_event.scoring.engine import Carry, ScoreOptions, Scorer
from lstm_rare_event.scoring.output import STDIO

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
        "run": {"path": str(Path(run_dir).resolve()), "fingerprint": scorer.fingerprint},
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
        if data["run"]["fingerprint"] != scorer.fingerprint:
            if not options.adopt:
                raise UserError(
                    f"{path}: written with another run ({data['run']['path']}): its detector, preprocessor or "
                    f"threshold differ from {run_dir}'s (a retrain or another run); pass --adopt to carry its rows "
                    "and open episode over to this run, or move the state away to start a new one")
            if data["features"] != features:
                raise UserError(f"{path}: written for other sensors than {run_dir}'s; move it away to start a new one")
        t = lambda v: None if v is None else np.datetime64(v, "s")  # noqa: E731
        carry = Carry(last_time=t(data["last_row"]), last_scored=t(data["last_scored"]),
                      episode=OpenEpisode(int(data["episode"]["last_id"]), t(data["episode"]["start"]),
                                          t(data["episode"]["last_flagged"])), rows=int(data["rows"]),
                      windows=int(data["windows"]), tail_start=t(data["history"]["segment_start"]))
        packed = data["history"]["arrays"]
        if packed is not None:
            with np.load(io.BytesIO(base64.b64decode(packed)), allow_pickle=False) as arrays:
                a = {k: arrays[k] for k in arrays.files}
            carry.tail = Table(a["time"].astype("datetime64[s]"), a["values"].astype(np.float64), features,
                               a.get("y"), a.get("utc_offset"))
            carry.held = a["held"].astype(bool)
            if carry.tail.values.shape != (len(carry.tail), len(features)) or len(carry.held) != len(carry.tail):
                raise broken("history arrays of the wrong shape")
        output = _output(data["output"], broken)
        # A state from before alerting was tracked starts with nothing told.
        watch = Watch.start(data.get("alerts"), str(run_dir), scorer.rule.merge_minutes, options.clear_minutes)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
        raise broken(f"{type(exc).__name__}: {exc}") from None
    return carry, output, watch




def _output(record, broken) -> dict:
    """The output file's record: stdout, or a file's path, length and identity (the identity
    is missing from states written before it was recorded)."""
    if not isinstance(record, dict) or not isinstance(record.get("path"), str) or not record["path"]:
        raise broken(f"output {record!r}")
    if record["path"] != STDIO:
        for key in ("bytes", "device", "inode"):
            value = record.get(key)
            if value is not None and not (type(value) is int and value >= 0):
                raise broken(f"output {key} {value!r}")
    return dict(record)

"""The state file of ``score --state``: what one call hands the next.

JSON with the arrays base64 npz (never pickle): the carried raw rows (:class:`.engine.Carry`),
the open alarm episode, the run it was written with (its path, a fingerprint of its files, its
detector and threshold), the runs it was adopted from (``adopted``: from which run to which,
when, and after which window, so that every window of the output can be told the run that
scored it) and the output file's record: its path, identity and length after the call's append
(so that a call killed between the append and the state write is undone by the next one).
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
import zipfile
from pathlib import Path

import numpy as np

from lstm_rare_event.alarms.rule import OpenEpisode
from lstm_rare_event.alerts.conditions import DEFAULT_CLEAR_MINUTES
from lstm_rare_event.alerts.watch import Watch
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.csv import MAX_ABS_VALUE, Table
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
        "run": {"path": str(Path(run_dir).resolve()), "fingerprint": scorer.fingerprint,
                "detector": scorer.detector.name, "threshold": scorer.rule.value, "files": scorer.verified},
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


def _broken(path: Path, what: str) -> UserError:
    return UserError(f"{path}: not a score state written by this tool ({what}); move it away to start a new one")


def _load(path: Path) -> dict:
    """The state's JSON object, of this tool's format."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; give the --state file of a score call") from None
    except (OSError, ValueError) as exc:
        raise _broken(path, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise _broken(path, f"format {data.get('format') if isinstance(data, dict) else data!r}")
    return data


def remembered(path: Path):
    """``known(run)`` for :func:`~lstm_rare_event.scoring.engine.load_scorer`: the run's files
    as the call that wrote the state ``path`` verified them, when it scored the run directory
    ``run`` (else None); a state that cannot tell is read (and refused) by :func:`read_state`."""
    def known(run) -> dict | None:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data["run"]["path"] != str(Path(run).resolve()):
                return None
            files = data["run"]["files"]
            valid = all(isinstance(name, str) and isinstance(entry, list) and len(entry) == 4 and
                        isinstance(entry[0], str) and all(type(v) is int for v in entry[1:])
                        for name, entry in files.items())
            return files if valid else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    return known


def _watch(data: dict, run_dir, merge_minutes: float, clear_minutes: float = DEFAULT_CLEAR_MINUTES,
           stale_after=None) -> Watch:
    # A state from before alerting was tracked starts with nothing told.
    watch = Watch.start(data.get("alerts"), str(run_dir), merge_minutes, clear_minutes, stale_after)
    if watch.last_score is not None and not math.isfinite(watch.last_score):
        raise ValueError(f"last score {watch.last_score!r}")
    return watch


_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, OSError, OverflowError)


def read_progress(path: Path, run_dir, merge_minutes: float) -> dict:
    """What a state says of its scoring job, without scoring (``status``): the run it was
    written with, the last row and window, the counts, its alerting (a :class:`Watch`) and its
    last adoption; checked as :func:`read_state` checks them."""
    data = _load(path)
    try:
        written_with = data["run"]["path"]
        if not isinstance(written_with, str):
            raise ValueError(f"run path {written_with!r}")
        adopted = _adoptions(data)
        return {"written_with": written_with, "last_row": time_or_none(_time(data, "last_row")),
                "last_scored": time_or_none(_time(data, "last_scored")), "rows": _count(data, "rows"),
                "windows": _count(data, "windows"), "watch": _watch(data, run_dir, merge_minutes),
                "last_adopted": adopted[-1] if adopted else None}
    except _MALFORMED as exc:
        raise _broken(path, f"{type(exc).__name__}: {exc}") from None


def _adoptions(data: dict) -> list[dict]:
    """The state's adoption records, oldest first; ValueError (or the like) when one is not a
    record with a time ``after`` (or none) and a finite ``threshold`` (or none)."""
    adopted = list(data.get("adopted") or ())
    for record in adopted:
        if record.get("after") is not None:
            _time(record, "after")
        if record.get("threshold") is not None and not math.isfinite(record["threshold"]):
            raise ValueError(f"adopted threshold {record['threshold']!r}")
    return adopted


def read_adoptions(path: Path) -> list[dict]:
    """The state's adoption records, oldest first (what a figure needs to draw each run's
    threshold over its own windows: :func:`~lstm_rare_event.scoring.figure.run_thresholds`)."""
    data = _load(path)
    try:
        return _adoptions(data)
    except _MALFORMED as exc:
        raise _broken(path, f"{type(exc).__name__}: {exc}") from None


def read_state(path: Path, scorer: Scorer, run_dir, options: ScoreOptions) -> tuple[Carry, dict, Watch]:
    """The carry, the output record and the alerting saved in ``path``, refused when malformed
    (a value this tool never writes, carried rows the input checks would have refused) or
    written with another run (unless ``options.adopt``)."""
    data = _load(path)
    try:
        features = list(scorer.preprocessor.features_)
        adopted = tuple(_adoptions(data))
        if data["run"]["fingerprint"] != scorer.fingerprint:
            adopted = (*adopted, _adoption(path, data, scorer, run_dir, options))[-ADOPTIONS_KEPT:]
        episode, history = data["episode"], data["history"]
        carry = Carry(last_time=_time(data, "last_row"), last_scored=_time(data, "last_scored"),
                      episode=OpenEpisode(_count(episode, "last_id"), _time(episode, "start"),
                                          _time(episode, "last_flagged")),
                      rows=_count(data, "rows"), windows=_count(data, "windows"),
                      tail_start=_time(history, "segment_start"), adopted=adopted)
        packed = history["arrays"]
        if packed is not None:
            carry.tail, carry.held = _carried(packed, features, carry)
        if _count(history, "rows") != (0 if carry.tail is None else len(carry.tail)):
            raise ValueError(f"history rows {history['rows']!r}, not the number of rows carried")
        output = _output(data["output"])
        watch = _watch(data, run_dir, scorer.rule.merge_minutes, options.clear_minutes, options.stale)
    except UserError:
        raise
    except _MALFORMED as exc:
        raise _broken(path, f"{type(exc).__name__}: {exc}") from None
    return carry, output, watch


def _time(data: dict, key: str):
    """A time as :func:`time_or_none` writes it (ISO 8601 to the second, UTC), or None."""
    value = data[key]
    if value is None:
        return None
    if not isinstance(value, str) or time_or_none(np.datetime64(value, "s")) != value:
        raise ValueError(f"{key} {value!r}, not a time")
    return np.datetime64(value, "s")


def _count(data: dict, key: str) -> int:
    value = data[key]
    if type(value) is not int or value < 0:
        raise ValueError(f"{key} {value!r}, not a count")
    return value


def _carried(packed, features: list[str], carry: Carry) -> tuple[Table, np.ndarray]:
    """The carried raw rows and which of them --missing hold filled, refused unless they are
    rows the input checks let through (finite values within range, labels 0 or 1, times
    strictly increasing) ending at the state's last row."""
    if not isinstance(packed, str):
        raise ValueError(f"carried rows {type(packed).__name__}, not base64 text")
    try:
        with np.load(io.BytesIO(base64.b64decode(packed, validate=True)), allow_pickle=False) as arrays:
            a = {k: arrays[k] for k in arrays.files}
    except (EOFError, zipfile.BadZipFile) as exc:  # binascii.Error and the rest are ValueErrors
        raise ValueError(f"carried rows: {exc}") from None
    times, values, held, y, offset = a["time"], a["values"], a["held"], a.get("y"), a.get("utc_offset")
    n = len(times)
    kinds = {"time": (times, "i"), "values": (values, "f"), "held": (held, "b"), "y": (y, "iu"),
             "utc_offset": (offset, "i")}
    for name, (array, kind) in kinds.items():
        if array is not None and (array.dtype.kind not in kind or len(array) != n):
            raise ValueError(f"carried {name} of type {array.dtype} and length {len(array)}")
    if values.shape != (n, len(features)):
        raise ValueError(f"carried values of shape {values.shape}, not {(n, len(features))}")
    if not (np.isfinite(values).all() and (np.abs(values) <= MAX_ABS_VALUE).all()):
        raise ValueError(f"a carried value that is not finite or beyond {MAX_ABS_VALUE:g}")
    if y is not None and not np.isin(y, (0, 1)).all():
        raise ValueError("a carried label that is not 0 or 1")
    if offset is not None and not (np.abs(offset) < 86400).all():
        raise ValueError("a carried UTC offset of a day or more")
    times = times.astype("datetime64[s]")
    if (np.diff(times) <= np.timedelta64(0, "s")).any():
        raise ValueError("carried times that do not strictly increase")
    if n and (carry.last_time is None or times[-1] != carry.last_time):
        raise ValueError(f"carried rows ending at {times[-1]}, not at the last row {carry.last_time}")
    return Table(times, values.astype(np.float64), features, y, offset), held.astype(bool)


def _output(record) -> dict:
    """The output file's record: stdout, or a file's path, length and identity (the identity
    is missing from states written before it was recorded)."""
    if not isinstance(record, dict) or not isinstance(record.get("path"), str) or not record["path"]:
        raise ValueError(f"output {record!r}")
    if record["path"] != STDIO:
        for key in ("bytes", "device", "inode"):
            if record.get(key) is not None:
                _count(record, key)
    return dict(record)


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

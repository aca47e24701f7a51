"""Where events go besides stderr, with no server to run: a command, a JSON-lines log, and a
Prometheus textfile.

- ``--alert-cmd CMD`` runs CMD through the shell once per event, the event as JSON on its
  standard input and as ``LRE_*`` environment variables (as Alertmanager webhook receivers or
  git hooks get theirs); a non-zero exit, or no exit within the time left, is a failure.
- ``--alert-log FILE`` appends one JSON line per event, flushed to disk (fsync).
- ``--metrics FILE`` is rewritten atomically on every call (node_exporter's textfile
  collector reads ``*.prom``; the temporary file's name does not end so).

An event a sink could not take stays in a pending queue (kept in the score state) for that
sink alone, and is retried first on the next call: nothing is lost, and a log that worked is
not written twice. All sinks of a call share one time budget (``--wait``): a slow command is
killed when it runs out, and what was not tried waits for the next call. Delivery is at least
once: a call killed after telling and before saving its state tells again, with the same
event ``id``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from lstm_rare_event.alerts.events import Event
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import atomic_write_text

COMMAND, LOG = "command", "log"
SINKS = (COMMAND, LOG)
STDERR_LINES = 3  # of a failing command's stderr, kept in its error message
METRIC_PREFIX = "lstm_rare_event"


@dataclass(frozen=True)
class SinkOptions:
    alert_cmd: str | None = None
    alert_log: Path | None = None
    metrics: Path | None = None
    #: seconds all sinks of one call may take together
    timeout: float = 60.0

    def __post_init__(self):
        if self.alert_cmd is not None and not self.alert_cmd.strip():
            raise UserError("--alert-cmd is empty; give a command, or leave the option out")
        if not (math.isfinite(self.timeout) and self.timeout >= 0):
            raise UserError(f"the sinks' time budget (--wait) must be a number of seconds >= 0, got {self.timeout:g}")

    def sinks(self) -> tuple[str, ...]:
        return tuple(name for name, given in ((COMMAND, self.alert_cmd), (LOG, self.alert_log)) if given)


@dataclass
class Pending:
    """An event some sinks have not taken yet."""

    event: Event
    sinks: list
    attempts: int = 0
    error: str = ""

    def as_json(self) -> dict:
        return {"event": self.event.as_json(), "sinks": list(self.sinks), "attempts": self.attempts,
                "error": self.error}

    @classmethod
    def from_json(cls, data: dict) -> "Pending":
        sinks = list(data["sinks"])
        if not sinks or not set(sinks) <= set(SINKS) or not isinstance(data["attempts"], int):
            raise ValueError(f"not a pending event: {data!r}")
        return cls(Event.from_json(data["event"]), sinks, data["attempts"], str(data.get("error", "")))


@dataclass
class Delivery:
    """What one call's delivery left: events still pending and one line per failure."""

    pending: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    delivered: int = 0


def _kill(process: subprocess.Popen) -> None:
    """The command and what it started (it runs in its own process group on POSIX)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass


def run_command(command: str, event: Event, timeout: float) -> str | None:
    """Run ``command`` for ``event``; None when it succeeded, else why not (one line)."""
    env = {**os.environ, **event.environment()}
    payload = json.dumps(event.as_json(), sort_keys=True).encode()
    try:
        process = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, env=env, start_new_session=hasattr(os, "killpg"))
    except OSError as exc:
        return f"cannot start ({exc.strerror})"
    try:
        _, stderr = process.communicate(payload, timeout=max(timeout, 0.001))
    except subprocess.TimeoutExpired:
        _kill(process)
        process.communicate()
        return f"no exit within {timeout:.3g} s: killed"
    if process.returncode:
        lines = stderr.decode(errors="replace").strip().splitlines()[-STDERR_LINES:]
        return f"exit {process.returncode}" + (f": {' / '.join(lines)}" if lines else "")
    return None


def append_log(path: Path, event: Event) -> str | None:
    """Append ``event`` as one JSON line, on disk before returning; None or why not."""
    line = json.dumps(event.as_json(), sort_keys=True) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", newline="") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return f"cannot append ({exc.strerror})"
    return None


def deliver(new: list[Event], pending: list[Pending], options: SinkOptions, clock=time.monotonic) -> Delivery:
    """Hand the pending events (first, oldest first) and then ``new`` to the sinks, within
    ``options.timeout`` seconds in all; what a sink did not take stays pending for it."""
    sinks = options.sinks()
    queue = list(pending) + [Pending(event, list(sinks)) for event in new if sinks]
    deadline = clock() + options.timeout
    result = Delivery()
    for item in queue:
        left = []
        for sink in item.sinks:
            remaining = deadline - clock()
            if sink not in sinks:  # the option was dropped from the cron line: nobody to retry for
                result.errors.append(f"event {item.event.id} was pending for --alert-"
                                     f"{'cmd' if sink == COMMAND else 'log'}, which this call does not give; dropped")
                continue
            if remaining <= 0:
                why = "not tried: the call's time for sinks (--wait) was spent"
            elif sink == COMMAND:
                why = run_command(options.alert_cmd, item.event, remaining)
            else:
                why = append_log(options.alert_log, item.event)
            if why is None:
                result.delivered += 1
                continue
            left.append(sink)
            item.error = why
            where = options.alert_cmd if sink == COMMAND else options.alert_log
            result.errors.append(f"--alert-{'cmd' if sink == COMMAND else 'log'} {where}: {why}; "
                                 f"event {item.event.id} kept to retry on the next call")
        if left:
            item.sinks, item.attempts = left, item.attempts + 1
            result.pending.append(item)
    return result


# -- the Prometheus textfile ------------------------------------------------------------------
#: name -> (type, help): what --metrics writes
METRICS = {
    "last_score": ("gauge", "Score of the last window scored."),
    "threshold": ("gauge", "Alarm threshold of the run that scored it."),
    "episode_open": ("gauge", "1 while an alarm episode is open."),
    "episode_id": ("gauge", "Id of the latest alarm episode (0: none yet)."),
    "rows_scored_total": ("counter", "Rows taken in since the state was created."),
    "windows_scored_total": ("counter", "Windows scored since the state was created."),
    "last_row_timestamp_seconds": ("gauge", "Time of the last row scored (Unix seconds, UTC)."),
    "run_age_seconds": ("gauge", "Seconds since the scoring run was thresholded."),
    "condition": ("gauge", "1 while the data condition is in force."),
    "alerts_pending": ("gauge", "Events a sink has not taken yet."),
}


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "NaN"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def metrics_text(values: dict, labels: dict[str, str], conditions: dict[str, bool]) -> str:
    """The textfile: each of :data:`METRICS` with ``labels`` (``state`` names the scoring job,
    so several jobs on one host do not clash), the conditions one series each."""
    base = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
    lines = []
    for name, (kind, text) in METRICS.items():
        full = f"{METRIC_PREFIX}_{name}"
        lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}"]
        if name == "condition":
            for condition, on in sorted(conditions.items()):
                lines.append(f'{full}{{{base},condition="{_label(condition)}"}} {int(on)}')
        else:
            lines.append(f"{full}{{{base}}} {_number(values.get(name))}")
    return "\n".join(lines) + "\n"


def write_metrics(path: Path, values: dict, labels: dict[str, str], conditions: dict[str, bool]) -> str | None:
    """Replace the textfile at ``path`` at once; None or why not."""
    try:
        atomic_write_text(path, metrics_text(values, labels, conditions))
    except OSError as exc:
        return f"--metrics {path}: cannot write ({exc.strerror})"
    except UserError as exc:  # the folder cannot take the file (atomic_file says why)
        return f"--metrics {exc}"
    return None

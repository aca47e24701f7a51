"""``score RUN INPUT --follow --state STATE --out FILE``: stay resident and score rows as they
are appended.

INPUT is a growing file; a day-file pattern with strftime fields (``incoming/%Y-%m-%d.csv``:
the file the clock names, yesterday's read first, and a file read to its end once the next one
is there); or ``-``, a pipe, until it closes. Each batch of new complete lines is one stateful
call (:func:`.calls.score` with ``--state``): the same engine, state file, lock, output append
and alerting as the cron mode. So a process killed at any moment and started again writes
what an uninterrupted one would: the state, not this process, knows which rows were scored; a
restart reads the files from their start, and the rows already seen are skipped. The lock is
held only while a batch is scored, so ``status`` (or a cron call) reads the state between
batches.

RUN may be the link (``current``) that ``promote`` swaps, or a directory replaced by renames:
it is resolved again between batches, and a new run is loaded and the state carried over to it
at once, as ``--adopt`` does (:mod:`.state`: only to a run of the same detector and sensors);
a run refused is an error line, the old one scoring on.

SIGTERM stops after the batch in progress (the command exits 0); Ctrl-C interrupts it (exit
130), the batch undone as a killed call's is (the next start cuts the output back).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from lstm_rare_event import log
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.csv import Buffer, is_parquet
from lstm_rare_event.preprocess.inputs import GLOB_CHARS
from lstm_rare_event.scoring import calls
from lstm_rare_event.scoring.engine import ScoreOptions, Scorer, feed_file, load_scorer
from lstm_rare_event.scoring.output import STDIO, check_output

DAY_SECONDS = 86400


@dataclass(frozen=True)
class FollowOptions:
    #: seconds between looks at INPUT while nothing new comes: half of it is the mean added latency
    poll: float = 0.01
    #: new lines read per batch at most: a restart's catch-up is scored (and saved) in pieces
    batch_bytes: int = 16 << 20

    def __post_init__(self):
        if not self.poll > 0 or self.batch_bytes < 1:
            raise UserError(f"follow: poll {self.poll!r} s and batch_bytes {self.batch_bytes!r} must be positive")


@dataclass(frozen=True)
class Piece:
    """New complete lines of one input: ``text`` is its header line then the lines, the first
    of which is the input's data row ``first_row`` (for messages)."""

    name: str
    text: bytes
    first_row: int


class _Lines:
    """Complete lines cut from bytes as they come: the header line kept, the data rows counted."""

    def __init__(self):
        self.header, self.rows, self.partial = b"", 0, b""

    def take(self, name: str, data: bytes, final: bool = False) -> Piece | None:
        """The piece of ``data`` (appended to what came before) up to its last line end; at the
        end of the input (``final``), a last line without one too. None: no new line (the
        header, alone, only the first time)."""
        data = self.partial + data
        if final and data and not data.endswith(b"\n"):
            data += b"\n"
        end = data.rfind(b"\n") + 1
        self.partial = data[end:]
        lines = data[:end]
        first = not self.header
        if first:
            cut = lines.find(b"\n") + 1
            if cut == 0:
                return None
            self.header, lines = lines[:cut], lines[cut:]
        if not lines and not first:
            return None
        piece = Piece(name, self.header + lines, self.rows + 1)
        self.rows += lines.count(b"\n")
        return piece


class GrowingFile:
    """The new lines of a file that grows, or of the day files a strftime pattern names.

    A file replaced (another inode) or cut shorter is read again from its start (the state skips
    the rows seen). With a pattern, the names from a day ago to now are followed in turn: a file
    is left for the next once the next one is there and it has nothing new."""

    def __init__(self, pattern: str, clock=time.time):
        self.pattern, self.clock = pattern, clock
        self.dated = "%" in pattern
        now = clock()
        self.queue = self._names(now - DAY_SECONDS, now) if self.dated else [pattern]
        self._restart(None)

    def _names(self, start: float, end: float) -> list[str]:
        """The names the pattern gives from ``start`` to ``end``, hour by hour (an hourly or daily pattern)."""
        names, t = [], start
        while True:
            name = time.strftime(self.pattern, time.localtime(min(t, end)))
            if name not in names:
                names.append(name)
            if t >= end:
                return names
            t += 3600

    def _restart(self, identity) -> None:
        self.lines, self.offset, self.identity = _Lines(), 0, identity

    @property
    def closed(self) -> bool:
        return False

    def missing(self) -> list[str]:
        """The missing-input condition's message while no file to follow is there."""
        if any(Path(name).exists() for name in self.queue):
            return []
        return [f"{self.queue[-1]}: file not found"]

    def piece(self, limit: int) -> Piece | None:
        if self.dated:
            name = time.strftime(self.pattern, time.localtime(self.clock()))
            if name not in self.queue:
                self.queue.append(name)
        while True:
            piece = self._read(Path(self.queue[0]), limit)
            if piece is not None or len(self.queue) == 1 or not any(Path(n).exists() for n in self.queue[1:]):
                return piece
            self.queue.pop(0)
            self._restart(None)

    def _read(self, path: Path, limit: int) -> Piece | None:
        try:
            with open(path, "rb") as handle:
                st = os.fstat(handle.fileno())
                identity = (st.st_dev, st.st_ino)
                if identity != self.identity or st.st_size < self.offset:
                    if self.identity is not None:
                        log.info(f"{path}: replaced or cut shorter; read again from its start (rows seen are skipped)")
                    self._restart(identity)
                if st.st_size == self.offset:
                    return None
                handle.seek(self.offset)
                data = handle.read(min(st.st_size - self.offset, limit))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror})") from None
        self.offset += len(data)
        return self.lines.take(str(path), data)

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)


class Pipe:
    """The lines of standard input (a pipe) as they come, until it closes."""

    name = "stdin"

    def __init__(self, stream=None):
        self.fd = (stream or sys.stdin.buffer).fileno()
        self.lines, self.closed = _Lines(), False

    def missing(self) -> list[str]:
        return []

    def piece(self, limit: int) -> Piece | None:
        data = b""
        while not self.closed and len(data) < limit and select.select([self.fd], [], [], 0)[0]:
            more = os.read(self.fd, 1 << 16)
            self.closed = not more
            data += more
        return self.lines.take(self.name, data, final=self.closed)

    def wait(self, seconds: float) -> None:
        if not self.closed:
            select.select([self.fd], [], [], seconds)


def _identity(link) -> tuple | None:
    """Which directory RUN names: its real path and inode (a directory renamed into RUN's
    place keeps the path); None while there is none (between the renames of a swap)."""
    path = os.path.realpath(link)
    try:
        return path, os.stat(path).st_ino
    except OSError:
        return None


class _Run:
    """RUN's scorer, and the run RUN names now when that is another one."""

    def __init__(self, given, options: ScoreOptions):
        self.given, self.options = given, options
        self.identity, self.scorer = _identity(given), self._load()
        self.refused = None

    def _load(self) -> Scorer:
        return load_scorer(self.given, self.options.engine, self.options.wait, self.options.allow_pickle)

    def newer(self) -> tuple[tuple, Scorer] | None:
        """The run RUN names now, loaded, when it is not the one scoring (nor one refused before)."""
        identity = _identity(self.given)
        if identity is None or identity in (self.identity, self.refused):
            return None
        self.refused = identity  # until its state is carried over
        try:
            return identity, self._load()
        except UserError as exc:
            log.error(f"{exc}; {self.scorer.run} scores on")
            return None

    def take(self, identity: tuple, scorer: Scorer) -> None:
        log.info(f"{self.given}: {scorer.run} loaded, the state carried over to it")
        self.identity, self.scorer, self.refused = identity, scorer, None


class _Stop:
    """Set by SIGTERM: the loop ends after the batch in progress."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        self.requested = True


@contextmanager
def _stop_on_sigterm():
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def source_of(argument: str):
    """INPUT as a :class:`Pipe` (``-``) or a :class:`GrowingFile`; a file that cannot grow by lines is refused."""
    if argument == STDIO:
        return Pipe()
    if any(c in argument for c in GLOB_CHARS) and not Path(argument).exists():
        raise UserError(f"{argument}: --follow takes one file or a day-file pattern with strftime fields "
                        "(incoming/%Y-%m-%d.csv), not a glob")
    if is_parquet(argument) or argument.lower().endswith(".gz"):  # the compressed inputs read_csv takes
        raise UserError(f"{argument}: --follow reads lines as they are appended to a plain CSV file; "
                        "a compressed or Parquet file cannot be followed")
    if Path(argument).is_dir():
        raise UserError(f"{argument}: a folder; give a file, or a day-file pattern such as "
                        f"{Path(argument) / '%Y-%m-%d.csv'}")
    return GrowingFile(argument)


def follow(run_dir, argument: str, out_path, state_path, options: ScoreOptions = ScoreOptions(), history=None,
           settings: FollowOptions = FollowOptions(), on_batch=None, source=None) -> dict:
    """Score the rows appended to INPUT ``argument`` with the run ``run_dir`` until SIGTERM
    or the end of a pipe; ``on_batch(summary)`` after each batch. Returns the totals, in the
    keys of one call's summary (see :func:`.calls.score`). ``source``: the lines to follow
    (tests; None: ``argument``'s, :func:`source_of`)."""
    if state_path is None:
        raise UserError("--follow keeps its place in --state; give --state FILE")
    if options.plot is not None:
        raise UserError("--plot draws a figure once; with --follow draw it with report --scores")
    source = source or source_of(str(argument))
    if isinstance(source, GrowingFile) and not source.dated and str(out_path) != STDIO:
        check_output(Path(out_path), argument, run_dir)
    run = _Run(run_dir, options)
    totals = _Totals(str(run_dir), str(run.scorer.run.resolve()), str(argument), str(out_path), str(state_path))

    def batch(scorer: Scorer, piece: Piece | None, missing: list[str], adopt: bool = False) -> dict:
        def read(stream):
            frames = () if piece is None else \
                feed_file(stream, Buffer(piece.text, piece.name), options.chunk_rows, first_row=piece.first_row)
            return frames, missing

        return calls.score(run_dir, [str(argument)], out_path, replace(options, adopt=options.adopt or adopt), history,
                           state_path, scorer=scorer, read=read)

    told_missing = None
    with _stop_on_sigterm() as stop:
        while not stop.requested:
            newer = run.newer()
            if newer is not None:
                # The state carried over at once (no row read), so that a restart finds it adopted.
                try:
                    batch(newer[1], None, told_missing or [], adopt=True)
                except UserError as exc:
                    if exc.exit_code != UserError.exit_code:
                        raise
                    log.error(f"{exc}; {run.scorer.run} scores on")
                else:
                    run.take(*newer)
            piece = source.piece(settings.batch_bytes)
            missing = source.missing()
            if piece is None and missing == told_missing:
                if source.closed:
                    totals.stopped = "end of input"
                    break
                source.wait(settings.poll)
                continue
            result = batch(run.scorer, piece, missing)
            told_missing = missing
            totals.add(result)
            if on_batch is not None:
                on_batch(result)
        else:
            totals.stopped = "SIGTERM"
    return totals.summary()


class _Totals:
    """The batches' summaries added up."""

    def __init__(self, run_dir: str, run: str, argument: str, out: str, state: str):
        self.result = {"run_dir": run_dir, "run": run, "input": argument, "output": out, "state": state,
                       "batches": 0, "rows": 0, "windows": 0,
                       "skipped_rows": 0, "alarms": 0, "first_alarm": None, "last_alarm": None,
                       "episodes_opened": [], "open_episode": None}
        self.stopped = None

    def add(self, batch: dict) -> None:
        r = self.result
        r["batches"] += 1
        r["run"] = batch["run"]  # the run that scored last (RUN may have been promoted meanwhile)
        for key in ("rows", "windows", "skipped_rows", "alarms"):
            r[key] += batch[key]
        r["first_alarm"] = r["first_alarm"] or batch["first_alarm"]
        r["last_alarm"] = batch["last_alarm"] or r["last_alarm"]
        r["episodes_opened"] += batch["episodes_opened"]
        r["open_episode"] = batch["open_episode"]

    def summary(self) -> dict:
        return {**self.result, "stopped": self.stopped}

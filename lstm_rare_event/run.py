"""The run directory: its file names, the manifest, typed readers, locks and the commit.

Every step reads and writes a run directory through this module and nothing else:

- **Names.** Every file name of a run directory is defined here, once.
- **Manifest.** ``manifest.json`` records the sha256 of every file and, for every step, the
  hashes of the files it read; a reader refuses a file that does not belong with the rest.
- **Locks.** A step that writes holds ``.lock`` from its first read to its commit; a second
  writer waits ``--wait`` seconds, then gives up with exit 75. Readers (``score``) never wait
  for a writer: they share ``.read.lock``, which a commit holds exclusively only while it
  renames its files, so they never see half a step. Both are filelock's (``flock`` on POSIX,
  ``LockFileEx`` on Windows; ``.read.lock`` a SQLite reader/writer lock). A reader that cannot
  write the directory (a read-only mount, another user's run) takes no lock: it checks instead
  that no commit began or ended while it read.
- **The current run.** A deployment scores through a symbolic link (``current``) to one of its
  runs (``runs/<date>``): :func:`promote` replaces the link by one rename, so a reader sees the
  old run or the new one, never neither; :func:`resolve_run` follows it once per command.
- **Commit.** Files are staged in ``.staging/`` inside the run directory (one filesystem, so
  renames work on mounts) and flushed to disk, then a journal (``.commit.json``) is written
  atomically: that is the single commit point. The renames and the new manifest follow; a commit cut short by a
  kill is finished (rolled forward) by the next command that opens the run. Before the
  journal, the run is as it was; after it, as the step left it.

Why one module of about 750 lines: names, manifest, locks and commit are one contract (a
reader trusts what the lock and the commit guarantee), so they are read and changed together;
the current-run link is part of it, as promote removes old runs under those same locks.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, ReadWriteLock, Timeout

from lstm_rare_event.version import __version__
from lstm_rare_event.alarms.rule import DEFAULT_MERGE_MINUTES, AlarmRule
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import (
    Params, atomic_write_text, dumps, fsync_dir, fsync_tree, read_json, sha256_file,
)

# -- names --------------------------------------------------------------------------------
MANIFEST = "manifest.json"
PREPARE_JSON = "prepare.json"
SPLIT_FILES = {"train": "train.npz", "valid": "valid.npz", "test": "test.npz"}  # where windows end
ROWS_NPY = "rows.npy"  # the scaled rows that every split's windows are cut from
PREPROCESSOR = "preprocessor"  # a folder: the fitted Preprocessor
DETECTOR = "detector"  # a folder: the fitted detector
TRAIN_JSON = "train.json"
HISTORY_CSV = "history.csv"
LOSS_PNG = "loss.png"
THRESHOLD_JSON = "threshold.json"
THRESHOLD_PNG = "threshold.png"
EVALUATE_JSON = "evaluate.json"
TIMELINE_PNG = "error_timeline.png"
ROC_PR_PNG = "roc_pr.png"
HISTOGRAM_PNG = "error_hist.png"
BACKTEST_JSON = "backtest.json"
BACKTEST_CSV = "backtest.csv"
BACKTEST_TIMELINE_PNG = "backtest_timeline.png"
BACKTEST_FOLDS_PNG = "backtest_folds.png"
BACKTEST_WARNING_PNG = "backtest_warning.png"
FOLDS = "folds"  # backtest's finished folds, for resuming
BACKTEST_CONFIG = "config.json"  # in FOLDS: the arguments the folds were made with
LOCK = ".lock"
READ_LOCK = ".read.lock"
STAGING = ".staging"
JOURNAL = ".commit.json"

STEP_COMMANDS = {
    "prepare": "lstm-rare-event prepare INPUT --out {run}",
    "train": "lstm-rare-event train {run}",
    "threshold": "lstm-rare-event threshold {run}",
    "evaluate": "lstm-rare-event evaluate {run}",
}
EXIT_BUSY = 75  # EX_TEMPFAIL: cron and systemd read it as "try again later"
DEFAULT_WAIT = 60.0


def split_files(*names: str) -> list[str]:
    """The files that hold the windows of the splits ``names``."""
    return [*(SPLIT_FILES[n] for n in names), ROWS_NPY]


class Busy(UserError):
    """Another process holds the run directory's lock."""

    exit_code = EXIT_BUSY


def rerun(step: str, run) -> str:
    return f"re-run `{STEP_COMMANDS[step].format(run=run)}`"


def enclosing_run(path) -> Path | None:
    """The run directory that ``path`` lies in (the nearest folder above it with a run's
    manifest), None when it lies in none: a run's files are written by its steps alone."""
    for folder in Path(path).resolve().parents:
        if (folder / MANIFEST).is_file():
            try:
                data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # another tool's manifest.json (a web app's, say)
            if isinstance(data, dict) and {"files", "steps"} <= data.keys():
                return folder
    return None


def plain_name(name: str, source) -> str:
    """A name read from a run-directory file must name a file inside it: no absolute path,
    no '..', no hidden or empty part."""
    parts = str(name).split("/")
    if not isinstance(name, str) or any(p in ("", ".", "..") or p.startswith(".") or "\\" in p for p in parts):
        raise UserError(f"{source}: {name!r} is not a plain file name inside the run directory")
    return name


class _ReadOnly(UserError):
    """The lock file cannot be made or opened for writing: this process cannot write here."""


#: errors that say this process may not write the folder (its modes, a read-only mount)
_READ_ONLY_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def _cannot_open(path: Path, exc: OSError) -> UserError:
    kind = _ReadOnly if exc.errno in _READ_ONLY_ERRNOS else UserError
    return kind(f"{path}: cannot open the lock file ({exc.strerror or exc})")


def _busy(path: Path, what: str, wait: float) -> Busy:
    return Busy(f"{path.parent}: {what} (waited {wait:g} s; try again later, or raise --wait)")


@contextlib.contextmanager
def _flock(path: Path, wait: float, what: str):
    """Hold the exclusive lock ``path``; give up after ``wait`` seconds with :class:`Busy`."""
    lock = FileLock(path, timeout=wait)
    try:
        lock.acquire()
    except Timeout:
        raise _busy(path, what, wait) from None
    except OSError as exc:
        raise _cannot_open(path, exc) from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def _read_write_lock(path: Path, exclusive: bool, wait: float, what: str):
    """Hold the reader/writer lock ``path``, shared or ``exclusive``; give up after ``wait``
    seconds with :class:`Busy`. A lock instance of its own per hold: holds in one process
    exclude each other as those of two processes do."""
    try:
        lock = ReadWriteLock(path, timeout=wait, is_singleton=False)
    except OSError as exc:
        raise _cannot_open(path, exc) from None
    try:
        try:
            lock.acquire_write() if exclusive else lock.acquire_read()
        except Timeout:
            raise _busy(path, what, wait) from None
        try:
            yield
        finally:
            lock.release()
    finally:
        lock.close()


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM while renaming files: a commit is short, and finishing it is
    the only way to leave the run wholly after the step. They are delivered right after.

    The handlers are swapped rather than the signals blocked: a signal sent to the process can
    reach any thread (NumPy's BLAS threads too), whose mask blocking in this one would not
    change, and Python would still raise KeyboardInterrupt here mid-commit."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs handlers in the main thread only; nothing to hold here
        return
    received = []
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for held in old:
        signal.signal(held, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for held, handler in old.items():
            signal.signal(held, handler if handler is not None else signal.SIG_DFL)
        for signum in received:
            signal.raise_signal(signum)


# -- typed contents -----------------------------------------------------------------------
@dataclass(frozen=True)
class Threshold:
    value: float
    rule: str
    params: dict
    merge_minutes: float | None
    horizon_minutes: float | None
    data: dict
    smooth: int = 1

    @property
    def alarm_rule(self) -> AlarmRule:
        """The rule these values make (runs thresholded before merge_minutes was saved: the default)."""
        merge = DEFAULT_MERGE_MINUTES if self.merge_minutes is None else self.merge_minutes
        return AlarmRule(self.value, merge, self.horizon_minutes, self.rule, self.params, self.smooth)


class Run:
    """A run directory. Readers record the hash of every file they read (``inputs``), so that
    a step can refuse to commit results computed from files that changed meanwhile."""

    def __init__(self, path, known: dict | None = None):
        """``known``: what :meth:`verified` said in an earlier command (a score state keeps it),
        so that the files unchanged since are not hashed again (see :meth:`digest`)."""
        self.path = Path(path)
        self.inputs: dict[str, str] = {}
        self._manifest: dict | None = None
        # name -> (sha256, size, mtime_ns, ctime_ns): each file hashed once per command, while its lock is held
        self._digests: dict[str, tuple[str, int, int, int]] = {}
        self._known = {name: tuple(entry) for name, entry in (known or {}).items()}

    def __str__(self) -> str:
        return str(self.path)

    def file(self, name: str) -> Path:
        return self.path / name

    # -- locking and recovery ----------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, wait: float = DEFAULT_WAIT, create: bool = False):
        """The writer lock, from a step's first read to its commit. Only a step that makes a
        run directory (``create``) makes it: a mistyped path is an error, not a new folder."""
        if create:
            self._ensure_dir()
        elif not self.path.is_dir():
            raise UserError(f"{self.path}: no such run directory; {rerun('prepare', self.path)} first")
        with _flock(self.path / LOCK, wait, "another step is writing this run directory"):
            with _read_write_lock(self.path / READ_LOCK, True, wait, "a reader holds this run directory"):
                self._recover()
                self._clean_staging()
            self._manifest, self._digests = None, {}
            yield self

    @contextlib.contextmanager
    def reading(self, wait: float = DEFAULT_WAIT):
        """A consistent view for reading: no commit can rename files meanwhile."""
        if not self.path.is_dir():
            raise UserError(f"{self.path}: no such run directory; {rerun('prepare', self.path)} first")
        if (self.path / JOURNAL).exists():
            # A writer died in its commit; finish it when no live writer is about to.
            with contextlib.suppress(Busy, _ReadOnly), self.locked(wait=0):
                pass
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(_read_write_lock(self.path / READ_LOCK, False, wait,
                                                    "a step is committing to this run directory"))
            except _ReadOnly:
                # No lock for a reader that cannot write here; see the module docstring.
                held.enter_context(self._unchanged())
            if (self.path / JOURNAL).exists():
                raise Busy(f"{self.path}: a step's commit is being finished (or was cut short: any step run by a "
                           "user who can write the directory finishes it); try again")
            self._manifest, self._digests = None, {}
            yield self

    def _commit_marks(self) -> tuple:
        """What every commit changes: the journal appears, then the manifest is replaced."""
        try:
            stat = (self.path / MANIFEST).stat()
            manifest = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            manifest = None
        return manifest, (self.path / JOURNAL).exists()

    @contextlib.contextmanager
    def _unchanged(self):
        """Read without the lock, then refuse what was read (Busy: try again) if a commit began
        or ended meanwhile; an error that a half-read commit caused is that Busy too."""
        before = self._commit_marks()
        changed = Busy(f"{self.path}: a step committed to this run directory while it was read; try again")
        try:
            yield
        except UserError:
            if self._commit_marks() != before:
                raise changed from None
            raise
        if self._commit_marks() != before:
            raise changed

    def _ensure_dir(self):
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UserError(f"{self.path}: exists and is not a directory") from None
        except OSError as exc:
            raise UserError(f"{self.path}: cannot create the run directory ({exc.strerror})") from None

    def remove_if_empty(self) -> None:
        """Remove the directory when it holds nothing but this tool's locks and staging: one
        that a failed step made."""
        if self.path.is_dir() and not {p.name for p in self.path.iterdir()} - {LOCK, READ_LOCK, STAGING}:
            shutil.rmtree(self.path, ignore_errors=True)

    def _recover(self) -> None:
        """Finish a commit whose journal was written (roll forward)."""
        journal = self.path / JOURNAL
        if not journal.exists():
            return
        try:
            plan = json.loads(journal.read_text(encoding="utf-8"))
            # The staging folder is hidden (.staging/NAME), which plain_name refuses on its own.
            top, _, child = plan["staging"].partition("/")
            if top != STAGING or (self.path / STAGING).is_symlink():
                raise UserError(f"{journal}: the staging folder is not in {STAGING}")
            staging = self.path / STAGING / plain_name(child, journal)
            names = [plain_name(n, journal) for n in plan["files"]]
            removed = [plain_name(n, journal) for n in plan["remove"]]
            manifest = plan["manifest"]
        except (ValueError, KeyError, TypeError, AttributeError, UserError):
            # A journal is written atomically, so it is whole; anything else is not ours.
            raise UserError(f"{journal}: not a commit journal written by this tool; remove it by hand") from None
        _apply(self.path, staging, names, removed, manifest)

    def _clean_staging(self) -> None:
        """Staging folders of dead steps, and a journal's temporary file from a kill while it was
        written (only a dead writer leaves either behind the lock). A ``.staging`` that is not
        a folder (a symbolic link to one) is not ours: it is removed, never followed."""
        staging = self.path / STAGING
        if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
            staging.unlink()
        elif staging.is_dir():
            for child in staging.iterdir():
                shutil.rmtree(child, ignore_errors=True)
        for leftover in self.path.glob(f".{JOURNAL}.*.partial"):
            leftover.unlink(missing_ok=True)

    # -- the manifest and checks ---------------------------------------------------------
    def manifest(self) -> dict:
        if self._manifest is None:
            path = self.path / MANIFEST
            if not path.exists():
                self._manifest = {"package_version": __version__, "files": {}, "steps": {}}
            else:
                data = read_json(path, f"{rerun('prepare', self.path)}")
                files, steps = data.get("files"), data.get("steps")
                ok = isinstance(files, dict) and isinstance(steps, dict) and all(
                    isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("step"), str)
                    for e in files.values())
                if not ok:
                    raise UserError(f"{path}: not a manifest written by this tool (expected 'files' with a sha256 "
                                    f"and step per file, and 'steps'); {rerun('prepare', self.path)}")
                for name in files:
                    plain_name(name, path)
                for step, entry in steps.items():
                    inputs = entry.get("inputs", {}) if isinstance(entry, dict) else None
                    if not (isinstance(inputs, dict) and all(isinstance(v, str) for v in inputs.values())):
                        raise UserError(f"{path}: steps.{step} is {json.dumps(entry)}, expected an object with the "
                                        f"sha256 of each file the step read ('inputs'); {rerun('prepare', self.path)}")
                self._manifest = data
        return self._manifest

    def files_of(self, step: str) -> list[str]:
        return sorted(n for n, e in self.manifest()["files"].items() if e["step"] == step)

    def has(self, step: str) -> bool:
        return step in self.manifest()["steps"]

    def check(self, step: str, names=None) -> list[str]:
        """The files ``step`` wrote (or ``names`` of them), after checking that they exist, match
        their recorded hashes, and were made from the inputs in the directory now. Their hashes
        join :attr:`inputs`."""
        if not self.path.is_dir():
            raise UserError(f"{self.path}: no such run directory; {rerun('prepare', self.path)} first")
        manifest = self.manifest()
        if step not in manifest["steps"]:
            raise UserError(f"{self.path}: no {step} results; {rerun(step, self.path)} first")
        if names is not None:
            wanted = names
            names = [n for n in self.files_of(step) if _under(n, wanted)]
            absent = [w for w in wanted if not any(_under(n, [w]) for n in names)]
            if absent:
                raise UserError(f"{self.path / absent[0]}: not among the files {step} wrote in this run; "
                                f"{rerun(step, self.path)}")
        else:
            names = self.files_of(step)
        files, steps = manifest["files"], manifest["steps"]
        for name in names:
            path = self.path / name
            if not path.is_file():
                raise UserError(f"{path}: missing; {rerun(step, self.path)}")
            digest = self.digest(name)
            if digest != files[name]["sha256"]:
                raise UserError(f"{path}: differs from the file this run wrote (sha256 mismatch in {MANIFEST}); "
                                f"it comes from a different run or was edited; {rerun(step, self.path)}")
            self.inputs[name] = digest
        for used, digest in steps[step].get("inputs", {}).items():
            if files.get(used, {}).get("sha256") != digest:
                raise UserError(f"{self.path}: the {step} results were made from a different {used} than the one "
                                f"in this run; {rerun(step, self.path)}")
        return names

    def digest(self, name: str) -> str:
        """The sha256 of the file ``name``, hashed once per command (rows.npy can take seconds);
        hashed again if its size or change times moved since (a file replaced behind the lock).

        A file whose size, mtime and ctime are those ``known`` gives (an earlier command's
        hash) is not hashed again: writing a file moves its ctime, which no user can set back
        (only the system clock can), so a file edited since, even to the same size with its
        mtime put back, is hashed and refused. The trade-off: an edit made with the clock set
        back to the instant of the earlier hash would pass, as would a ``known`` forged in
        the state file by someone who may write it (and could as well replace the run)."""
        path = self.path / name
        stat = path.stat()
        times = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        cached = self._digests.get(name)
        if cached is None or cached[1:] != times:
            known = self._known.get(name)
            cached = (known[0] if known is not None and known[1:] == times else sha256_file(path), *times)
            self._digests[name] = cached
        return cached[0]

    def verified(self) -> dict[str, list]:
        """The files hashed or found unchanged in this command: name -> [sha256, size,
        mtime_ns, ctime_ns], for a later command's ``known``."""
        return {name: list(entry) for name, entry in sorted(self._digests.items())}

    # -- typed readers -------------------------------------------------------------------
    def prepare_info(self) -> Params:
        self.check("prepare", [PREPARE_JSON])
        path = self.path / PREPARE_JSON
        return Params(read_json(path), path, rerun("prepare", self.path))

    def utc_offset_seconds(self) -> int | None:
        """The data's own UTC offset in seconds (prepare.json), None for times without one."""
        value = self.prepare_info().data.get("utc_offset_seconds")
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def labelled(self) -> bool:
        """Whether prepare read a label column (runs from before unlabelled data always did)."""
        given = self.prepare_info().data.get("input")
        return not (isinstance(given, dict) and given.get("labelled") is False)

    def label_mode(self) -> str:
        """How the run's labels read: "events" (a break after the labelled rows) or "intervals"
        (every labelled row anomalous); runs prepared before the option existed have events."""
        options = self.prepare_info().data.get("options")
        return options.get("labels", "events") if isinstance(options, dict) else "events"

    def interval_minutes(self) -> float:
        return self.prepare_info().number("interval_minutes", lambda v: v > 0, "a positive number")

    def split(self, name: str):
        """A split's windows, cut from the memory-mapped rows as they are read."""
        from lstm_rare_event.preprocess.windows import load_rows, load_split

        self.check("prepare", split_files(name))
        return load_split(self.path / SPLIT_FILES[name], load_rows(self.path / ROWS_NPY))

    def split_digest(self, name: str) -> str | None:
        """What identifies a split's windows (its index and the rows), None when not prepared."""
        files = self.manifest()["files"]
        digests = [files.get(n, {}).get("sha256") for n in split_files(name)]
        return None if None in digests else ":".join(digests)

    def preprocessor(self):
        from lstm_rare_event.preprocess.preprocessor import Preprocessor

        self.check("prepare", [PREPROCESSOR])
        return Preprocessor.load(self.path / PREPROCESSOR, rerun("prepare", self.path))

    def detector(self, **load_options):
        from lstm_rare_event import detectors

        self.check("train", [DETECTOR])
        return detectors.load(self.path / DETECTOR, rerun("train", self.path), **load_options)

    def threshold(self) -> Threshold:
        self.check("threshold", [THRESHOLD_JSON])
        path = self.path / THRESHOLD_JSON
        p = Params(read_json(path), path, rerun("threshold", self.path))
        optional = lambda key: p.number(key, lambda v: v >= 0) if p.data.get(key) is not None else None  # noqa: E731
        return Threshold(
            value=p.number("value"),
            rule=p.text("rule"),
            params=p.get("params", dict, "an object"),
            merge_minutes=optional("merge_minutes"),
            horizon_minutes=optional("horizon_minutes"),
            data=p.data,
            smooth=p.integer("smooth", lambda v: v >= 1, "a number of windows >= 1") if "smooth" in p.data else 1,
        )

    def check_scorable(self) -> None:
        """Check what scoring reads (the preprocessor, the detector, the threshold): a run that
        lacks any of them, or whose steps do not belong together, is refused."""
        self.check("prepare", [PREPROCESSOR])
        self.check("train", [DETECTOR])
        self.check("threshold", [THRESHOLD_JSON])

    def json(self, step: str, name: str) -> dict:
        self.check(step, [name])
        return read_json(self.path / name, rerun(step, self.path))

    # -- writing -------------------------------------------------------------------------
    def writer(self, step: str, options=None, inputs: dict | None = None) -> "Writer":
        return Writer(self, step, options, self.inputs if inputs is None else inputs)


def _under(name: str, wanted) -> bool:
    return any(name == w or name.startswith(w + "/") for w in wanted)


def _apply(run_dir: Path, staging: Path, names: list[str], removed: list[str], manifest: dict) -> None:
    """The commit's file operations, each idempotent so that a recovery can redo them."""
    for name in removed:
        (run_dir / name).unlink(missing_ok=True)
        Writer.checkpoint(f"removed {name}")
    for name in names:
        source = staging / name
        if source.exists():
            target = run_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                # A folder cannot be renamed over a non-empty one; the old one goes first. This
                # runs after the journal, so a recovery redoes it and never lacks the new one.
                shutil.rmtree(target)
            os.replace(source, target)  # its bytes were flushed before the journal
        Writer.checkpoint(f"renamed {name}")
    fsync_dir(run_dir)  # the removals too, before the journal that would redo them goes
    atomic_write_text(run_dir / MANIFEST, dumps(manifest))
    Writer.checkpoint("manifest")
    (run_dir / JOURNAL).unlink(missing_ok=True)
    fsync_dir(run_dir)
    shutil.rmtree(staging, ignore_errors=True)


class Writer:
    """Stage a step's output files, then commit them all at once (see the module docstring).

    >>> with run.locked(), run.writer("train", options) as out:
    ...     detector.save(out.path(DETECTOR))
    ...     out.json(TRAIN_JSON, summary)

    Must be used while holding :meth:`Run.locked`. ``inputs`` are the hashes of the run's files
    as the step read them; the commit is refused if any of them changed since.
    """

    #: True once the last Writer in this process committed (the CLI's interrupt message)
    last_committed: bool = False

    def __init__(self, run: Run, step: str, options=None, inputs=None):
        self.run = run
        self.step = step
        self.options = options or {}
        self.inputs = dict(inputs or {})
        self._staging: Path | None = None

    @staticmethod
    def checkpoint(label: str) -> None:
        """Between the commit's file operations: a hook for fault-injection tests."""

    def __enter__(self) -> "Writer":
        Writer.last_committed = False
        parent = self.run.path / STAGING
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix=f"{self.step}.{os.getpid()}.", dir=parent))
        except OSError as exc:
            raise UserError(f"{self.run.path}: cannot write into the run directory ({exc.strerror})") from None
        return self

    def path(self, name: str) -> Path:
        """Where to write ``name`` now; it is moved into the run directory on commit."""
        return self._staging / name

    @contextlib.contextmanager
    def scratch(self):
        """A folder for intermediate files that are not results, removed when the block ends;
        it sits beside the staging folder, so a killed step's is removed by the next step."""
        with tempfile.TemporaryDirectory(prefix=f"{self.step}.scratch.", dir=self._staging.parent) as folder:
            yield Path(folder)

    def json(self, name: str, data) -> Path:
        target = self.path(name)
        target.write_text(dumps(data), encoding="utf-8")
        return target

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._commit()
        finally:
            if self._staging.exists() and not (self.run.path / JOURNAL).exists():
                shutil.rmtree(self._staging, ignore_errors=True)
        return False

    def _staged_files(self) -> list[str]:
        return sorted(str(p.relative_to(self._staging)) for p in self._staging.rglob("*") if p.is_file())

    def _commit(self) -> None:
        run = self.run
        for name, digest in self.inputs.items():
            path = run.path / name
            if not path.exists() or run.digest(name) != digest:
                producer = run.manifest()["files"].get(name, {}).get("step", "prepare")
                raise UserError(f"{path}: changed while this step ran; {rerun(producer, run.path)}, "
                                f"then this step again")
        run._manifest = None
        manifest = run.manifest()
        files = manifest["files"]
        written = self._staged_files()
        # Tops: a folder the step writes replaces the folder of the same name as a whole.
        tops = sorted({name.split("/")[0] for name in written})
        replaced = [n for n in files if n.split("/")[0] in tops or files[n]["step"] == self.step]
        # Files of the step's last run that this run does not write again go with it.
        removed = sorted(n for n in replaced if n.split("/")[0] not in tops)
        for name in replaced:
            del files[name]
        for name in written:
            files[name] = {"sha256": sha256_file(self._staging / name), "step": self.step}
        manifest["package_version"] = __version__
        manifest["steps"][self.step] = {"inputs": self.inputs, "outputs": written, "options": self.options}
        staging = str(self._staging.relative_to(run.path))
        fsync_tree(self._staging)  # what the journal commits is on disk before it
        with _signals_held(), _read_write_lock(run.path / READ_LOCK, True, 60, "a reader holds this run directory"):
            atomic_write_text(run.path / JOURNAL, json.dumps({"staging": staging, "files": tops,
                                                             "remove": removed, "manifest": manifest}))
            Writer.checkpoint("journal")
            _apply(run.path, self._staging, tops, removed, manifest)
            # Set while SIGINT is still held: a Ctrl-C held during the commit is raised as soon
            # as the block ends, and the CLI must then say that the files were written.
            Writer.last_committed = True
        run._manifest, run._digests = None, {}


# -- the current run: a link replaced by one rename ----------------------------------------
#: runs that promote keeps in the promoted run's folder: the newest by name (``runs/<date>``
#: names sort in time order), besides the run the link pointed to
DEFAULT_KEEP = 3


def resolve_run(run_dir) -> Path:
    """The run directory ``run_dir`` names, its link followed once. A command that reads a run
    through ``current`` reads this path from then on, so a :func:`promote` meanwhile cannot make
    it read one file of the old run and the next of the new. A path that is no link is returned
    as given, so that messages name it as the user wrote it."""
    given = Path(run_dir)
    if not given.is_symlink():
        return given
    target = Path(os.path.realpath(given))
    if not target.is_dir():
        raise UserError(f"{given}: a link to {os.readlink(given)}, which is "
                        f"{'not a directory' if target.exists() else 'missing'}; point the link at a complete run "
                        f"with `lstm-rare-event promote RUN --link {given}`")
    return target


@contextlib.contextmanager
def through_link(given, resolved: Path):
    """Errors about the run ``resolved`` that the link ``given`` points to, said of the link:
    the remedy is another run behind the link (or this one finished), never a run prepared into
    the link's name. Busy (exit 75) passes unchanged: the run is fine, only taken."""
    if Path(given) == resolved:
        yield
        return
    try:
        yield
    except UserError as exc:
        if exc.exit_code != UserError.exit_code:
            raise
        raise UserError(f"{given} links to {resolved}, which cannot be scored: {exc}; or point {given} at a "
                        f"complete run with `lstm-rare-event promote RUN --link {given}`") from None


def swap_checkpoint(label: str) -> None:
    """Between promote's operations: a hook for fault-injection tests."""


def promote(run_dir, link, keep: int = DEFAULT_KEEP, wait: float = DEFAULT_WAIT) -> dict:
    """Point the symbolic link ``link`` at the complete run ``run_dir`` by one rename: the new
    link is made under a temporary name beside it and renamed over the old one (``ln -sfn``
    unlinks, then links: a reader between the two finds no run), then the folder is flushed.
    Then the runs beside ``run_dir`` other than the newest ``keep`` by name are removed; the
    run the link pointed to stays (a score call may have just resolved the link to it), and so
    does a run a command is reading or writing (it goes with a later promote).

    The link holds a relative path when it can, so that the deployment's folder can move."""
    if keep < 2:
        raise UserError(f"--keep must be 2 or more (the new run and the one it replaces), got {keep}")
    link = Path(link)
    if not link.parent.is_dir():
        raise UserError(f"{link.parent}: no such folder for the link {link.name}")
    if link.exists() and not link.is_symlink():
        raise UserError(f"{link}: exists and is not a symbolic link; move it away (a run directory: into "
                        f"{Path(run_dir).parent}), then promote again")
    run = Run(resolve_run(run_dir))
    with _flock(link.parent / f".{link.name}.lock", wait, f"another promote is replacing {link.name}"):
        with run.reading(wait):
            run.check_scorable()
            kind = _kind(run)
        previous = Path(os.path.realpath(link)) if link.is_symlink() else None
        warning = None
        if previous is not None and previous.is_dir():
            try:
                with Run(previous).reading(wait) as before:
                    was = _kind(before)
            except UserError:
                was = kind  # a broken run behind the link: nothing a state could be carried from
            if was != kind:
                warning = (f"{run.path} differs from {previous} in its " +
                           ("detector" if was[0] != kind[0] else "sensors") +
                           f": a score --state of {link} will refuse its state even with --adopt; move it away")
        target = os.path.relpath(run.path.resolve(), link.parent.resolve())
        for leftover in link.parent.glob(f".{link.name}.*.new"):  # of a promote killed before its rename
            leftover.unlink()
        temporary = link.parent / f".{link.name}.{os.getpid()}.new"
        try:
            os.symlink(target, temporary, target_is_directory=True)
            swap_checkpoint("link made")
            os.replace(temporary, link)  # rename(2): atomic, and the old link is replaced, not followed
        except OSError as exc:
            raise UserError(f"{link}: cannot replace the link ({exc.strerror or exc})") from None
        finally:
            temporary.unlink(missing_ok=True)
        fsync_dir(link.parent)
        swap_checkpoint("renamed")
        removed, in_use = _prune(run.path.resolve(), previous, keep)
    return {"link": str(link), "run": str(run.path.resolve()), "target": target,
            "previous": None if previous is None else str(previous), "removed": removed, "in_use": in_use,
            "warning": warning}


def _kind(run: Run) -> tuple:
    """What a score state may be carried across (``score --adopt``): the detector and the sensors."""
    return run.threshold().data.get("detector"), run.prepare_info().data.get("features")


def _runs_beside(run_dir: Path) -> list[Path]:
    """The run directories in ``run_dir``'s folder (``runs/``), oldest first by name."""
    folder = run_dir.parent
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_symlink() and p.is_dir()
                  and ((p / MANIFEST).exists() or (p / LOCK).exists()))


def runs_before(run_dir, count: int) -> list[Path]:
    """The run ``run_dir`` (a link followed) and the runs beside it that sort before it by name
    (``runs/<date>``: the runs it replaced, night after night), newest first, ``count`` at most."""
    run = resolve_run(run_dir).resolve()
    earlier = [p for p in _runs_beside(run) if p.name < run.name]
    return [run, *earlier[::-1]][:count]


def _prune(kept: Path, previous: Path | None, keep: int) -> tuple[list[str], list[str]]:
    """Remove the run directories beside ``kept`` older (by name) than the newest ``keep``, but
    ``previous`` and any that a command holds. Each is renamed out of the way while its locks
    are held (a reader that comes later finds no run, never half of one), then deleted."""
    folder = kept.parent
    for leftover in folder.glob(".*.removed"):  # a promote killed while deleting
        shutil.rmtree(leftover, ignore_errors=True)
    runs = _runs_beside(kept)
    spared = {kept, previous, *runs[-keep:]}
    removed, in_use = [], []
    for old in runs:
        if old in spared:
            continue
        gone = folder / f".{old.name}.removed"
        try:
            with _flock(old / LOCK, 0, "a step is writing this run"), \
                    _read_write_lock(old / READ_LOCK, True, 0, "a command is reading this run"):
                os.replace(old, gone)
        except Busy:
            in_use.append(str(old))
            continue
        swap_checkpoint(f"removing {old.name}")
        shutil.rmtree(gone, ignore_errors=True)
        removed.append(str(old))
    fsync_dir(folder)
    return removed, in_use

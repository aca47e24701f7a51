"""Plain-file helpers every layer may use: hashes, JSON and writes that are whole or absent.

A rename commits a file only once the file's bytes are on disk: without an fsync before it, a
power cut can leave the new name pointing at an empty or partial file (ext4, XFS and btrfs
may write the rename first). So every committing rename here is write, fsync, rename, fsync
the folder (which makes the rename itself durable)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lstm_rare_event.errors import UserError

def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def pid_alive(pid: int) -> bool:
    """Whether a process lives: leftovers named after dead ones may be removed."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def to_jsonable(value):
    """Numbers and arrays from NumPy as plain JSON values; non-finite floats as null."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(data) -> str:
    return json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n"


def write_json(path, data) -> Path:
    path = Path(path)
    path.write_text(dumps(data), encoding="utf-8")
    return path


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's bytes to disk (Windows flushes only a handle open for writing)."""
    fd = os.open(path, (os.O_RDWR if os.name == "nt" else os.O_RDONLY) | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (the renames and removals in it) to disk. Windows cannot open a
    folder; its NTFS journals a rename with the metadata, so there is nothing to do there."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """Flush a file, or a folder with every file and folder under it, to disk."""
    path = Path(path)
    if not path.is_dir():
        fsync_file(path)
        return
    for folder, dirs, files in os.walk(path, topdown=False):
        for name in files:
            fsync_file(os.path.join(folder, name))
        fsync_dir(folder)


def _clean_partials(path: Path) -> None:
    """Partial files that dead processes left beside ``path`` (SIGKILL, power loss)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.partial$")
    for leftover in path.parent.glob(f".{path.name}.*.partial"):
        match = pattern.match(leftover.name)
        if match and not pid_alive(int(match.group(1))):
            leftover.unlink(missing_ok=True)


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w"):
    """The one way this tool writes a file whole or not at all: a handle (text, UTF-8 and
    newlines as written, or binary with ``mode`` "wb") on a temporary name beside ``path``,
    renamed to ``path`` once its bytes are on disk when the block succeeds and removed when it
    fails, so that a reader (a cron job, the next command) never sees a partial file. The
    temporary name carries the process id: leftovers of dead processes are removed by the next
    writer."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _clean_partials(path)
        handle = open(tmp, mode) if "b" in mode else open(tmp, mode, encoding="utf-8", newline="")
    except OSError as exc:
        raise UserError(f"{path}: cannot write the output ({exc.strerror})") from None
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file that is either complete or absent, never half-written, and on disk when
    this returns."""
    with atomic_file(path) as handle:
        handle.write(text)


def read_json(path: str | os.PathLike, hint: str = "") -> dict:
    """A JSON object from ``path``; any way to fail is one line (with ``hint``, what to do)."""
    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found{suffix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}){suffix}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror}){suffix}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(data).__name__}{suffix}")
    return data


def load_npz(path, keys, what: str) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of an npz file, never unpickling; any way to fail is one line."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in keys}
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # BadZipFile: cut short
        raise UserError(f"{path}: not {what} ({exc})") from None


def save_npz(path, **arrays) -> None:
    """Write arrays to ``path``, on disk when this returns (a rename may commit the file next)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())


class Params:
    """Typed access to a JSON object read from ``source``: a missing or malformed key is one
    line naming the file, the key and what to re-run."""

    def __init__(self, data: dict, source, hint: str):
        self.data, self.source, self.hint = data, source, hint

    def _fail(self, key, expected, value):
        shown = "missing" if value is _MISSING else f"{value!r}"
        raise UserError(f"{self.source}: key '{key}' is {shown}, expected {expected}; {self.hint}")

    def get(self, key, kind, expected: str, check=lambda v: True, default=None):
        value = self.data.get(key, _MISSING) if isinstance(self.data, dict) else _MISSING
        if value is _MISSING and default is not None:
            return default
        ok = value is not _MISSING and isinstance(value, kind) and not (
            isinstance(value, bool) and kind in ((int, float), int, float))
        if not ok or not check(value):
            self._fail(key, expected, value)
        return value

    def number(self, key, check=lambda v: True, expected="a number") -> float:
        value = self.get(key, (int, float), expected, lambda v: np.isfinite(v) and check(v))
        return float(value)

    def integer(self, key, check=lambda v: True, expected="an integer") -> int:
        return int(self.get(key, int, expected, check))

    def text(self, key, choices=None) -> str:
        expected = f"one of {', '.join(choices)}" if choices else "a string"
        return self.get(key, str, expected, lambda v: choices is None or v in choices)

    def strings(self, key) -> list[str]:
        return list(self.get(key, list, "a list of strings", lambda v: all(isinstance(s, str) for s in v)))

    def mapping(self, key) -> "Params":
        return Params(self.get(key, dict, "an object"), f"{self.source} ('{key}')", self.hint)


_MISSING = object()

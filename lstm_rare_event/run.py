"""Files in a run directory: atomic writes, the manifest, and the checks that keep runs apart.

Every step writes its outputs through a :class:`Writer`: files go to a staging folder beside
the run directory and are renamed into place only when the step has finished, so a failed or
interrupted step leaves the run directory as it was. The manifest (``manifest.json``) records
the sha256 of every file and, for every step, the hashes of the files it read; :func:`verify`
uses both to refuse a model, scaler or threshold that comes from a different run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lstm_rare_event import __version__
from lstm_rare_event.errors import UserError

MANIFEST = "manifest.json"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def to_jsonable(value):
    """Numbers and arrays from NumPy as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(data) -> str:
    return json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n"


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file that is either complete or absent, never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def read_manifest(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return {"package_version": __version__, "files": {}, "steps": {}}
    return read_json(path)


class Writer:
    """Stage a step's output files and publish them together, with the manifest, on success.

    >>> with Writer(run_dir, step="train", inputs=["train.npz"], options={...}) as out:
    ...     model.save(out.path("model.keras"))
    ...     out.json("train.json", summary)

    ``inputs`` are files of the run directory that the step read; their current hashes are
    recorded so that later steps can tell when one of them was replaced.
    """

    def __init__(self, run_dir, step: str, inputs=(), options=None):
        self.run_dir = Path(run_dir)
        self.step = step
        self.inputs = list(inputs)
        self.options = to_jsonable(options or {})
        self._staging: Path | None = None

    def __enter__(self) -> "Writer":
        parent = self.run_dir.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        self._staging = Path(tempfile.mkdtemp(prefix=f".{self.run_dir.name}.{self.step}.", dir=parent))
        return self

    def path(self, name: str) -> Path:
        """Where to write ``name`` now; it is moved into the run directory on commit."""
        return self._staging / name

    def json(self, name: str, data) -> Path:
        target = self.path(name)
        target.write_text(dumps(data), encoding="utf-8")
        return target

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._commit()
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)
        return False

    def _commit(self) -> None:
        manifest = read_manifest(self.run_dir)
        inputs = {name: sha256_file(self.run_dir / name) for name in self.inputs}
        written = sorted(p.name for p in self._staging.iterdir())
        for name in written:
            manifest["files"][name] = {"sha256": sha256_file(self._staging / name), "step": self.step}
        manifest["package_version"] = __version__
        manifest["steps"][self.step] = {"inputs": inputs, "outputs": written, "options": self.options}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in written:
            os.replace(self._staging / name, self.run_dir / name)
        atomic_write_text(self.run_dir / MANIFEST, dumps(manifest))


def require(run_dir, names, hint: str) -> None:
    """Fail with one line when a file a step needs is missing from the run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory ({hint})")
    missing = [name for name in names if not (run_dir / name).exists()]
    if missing:
        raise UserError(f"{run_dir}: missing {', '.join(missing)} ({hint})")


STEP_COMMANDS = {
    "prepare": "lstm-rare-event prepare INPUT --out {run_dir}",
    "train": "lstm-rare-event train {run_dir}",
    "threshold": "lstm-rare-event threshold {run_dir}",
}


def check_run(run_dir, files_by_step: dict[str, list[str]]) -> list[str]:
    """The files a step reads, after checking that each exists (naming the command that
    makes it when it does not) and that together they come from one run (:func:`verify`)."""
    names = []
    for step, files in files_by_step.items():
        require(run_dir, files, f"run `{STEP_COMMANDS[step].format(run_dir=run_dir)}` first")
        names += files
    verify(run_dir, names)
    return names


def verify(run_dir, names) -> None:
    """Refuse files that do not belong together.

    Each file must match the hash the manifest recorded when it was written, and the step
    that wrote it must have read the versions of its inputs that are in the directory now.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    files, steps = manifest.get("files", {}), manifest.get("steps", {})
    for name in names:
        entry = files.get(name)
        if entry is None:
            raise UserError(f"{run_dir / name}: not in this run's {MANIFEST}; it was not written by this run")
        if sha256_file(run_dir / name) != entry["sha256"]:
            raise UserError(
                f"{run_dir / name}: differs from the file this run wrote (sha256 mismatch in {MANIFEST}); "
                "it comes from a different run or was edited"
            )
        step = entry["step"]
        for used, digest in steps.get(step, {}).get("inputs", {}).items():
            current = files.get(used, {}).get("sha256")
            if current != digest:
                raise UserError(
                    f"{run_dir / name}: made by '{step}' from a different {used} than the one in this run; "
                    f"re-run '{step}'"
                )

"""A cron call of a row or two: no pandas imported, and the run's files hashed again only when
they changed since the call before (the state remembers their size, mtime and ctime), a file
edited since still refused."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, copy_run, invoke, ok

from lstm_rare_event import run as run_module
from lstm_rare_event.synthetic import make_sheet_breaks


@pytest.fixture
def scored(runs, tmp_path):
    """A copy of the mahalanobis run, a state after 200 rows, and a file of the next row."""
    run = copy_run(runs["mahalanobis"], tmp_path)
    lines = make_sheet_breaks(300, seed=2).to_csv(index=False, lineterminator="\n").splitlines(keepends=True)
    (tmp_path / "first.csv").write_text("".join(lines[:201]), encoding="utf-8")
    (tmp_path / "row.csv").write_text(lines[0] + lines[201], encoding="utf-8")
    state, out = tmp_path / "state.json", tmp_path / "scores.csv"
    ok("score", run, tmp_path / "first.csv", "--state", state, "--out", out, "-q")
    return run, tmp_path / "row.csv", state, out


def test_a_call_of_one_plain_row_imports_no_pandas(scored):
    run, row, state, out = scored
    code = ("import atexit, sys; atexit.register(lambda: print('pandas' in sys.modules)); "
            "from lstm_rare_event.cli import cli; "
            f"cli({['score', str(run), str(row), '--state', str(state), '--out', str(out), '-q']!r})")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert json.loads(state.read_text())["rows"] == 201


def _hashed(monkeypatch) -> list[str]:
    """The names of the files hashed from now on."""
    hashed = []
    real = run_module.sha256_file
    monkeypatch.setattr(run_module, "sha256_file", lambda path, *a: hashed.append(os.path.basename(path)) or
                        real(path, *a))
    return hashed


def test_the_next_call_hashes_no_file_unchanged_since(scored, monkeypatch):
    run, row, state, out = scored
    remembered = json.loads(state.read_text())["run"]["files"]
    assert {"threshold.json", "preprocessor/scaler.npz"} <= set(remembered)
    hashed = _hashed(monkeypatch)
    ok("score", run, row, "--state", state, "--out", out, "-q")
    assert hashed == []
    (run / "threshold.json").touch()  # a new mtime: hashed again (and found the same)
    ok("score", run, row, "--state", state, "--out", out, "-q")
    assert hashed == ["threshold.json"]


@pytest.mark.parametrize("mtime", ["changed", "put back"])
def test_a_file_edited_to_the_same_size_is_still_refused(scored, mtime):
    run, row, state, out = scored
    path = run / "threshold.json"
    before = path.stat()
    text = path.read_text(encoding="utf-8")
    edited = text.replace('"value": ', '"value":  ', 1).replace("  \"", " \"", 1)
    assert len(edited) == len(text) and edited != text
    path.write_text(edited, encoding="utf-8")
    if mtime == "put back":  # the ctime still moves, which no user can set back
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert path.stat().st_mtime_ns == before.st_mtime_ns
    result = invoke("score", run, row, "--state", state, "--out", out, "-q")
    assert result.exit_code == 2, result.output
    assert "threshold.json: differs from the file this run wrote" in result.output

"""The Python API: the README's example runs as written, and a pipeline scores as the command
line does, for a run it made and for one the command line made."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
from conftest import ROOT, ok

from lstm_rare_event import Pipeline

README = ROOT / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return next(block for block in blocks if "from lstm_rare_event import Pipeline" in block)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = {}
    exec(compile(readme_example(), "README.md", "exec"), names)
    scores = names["scores"]
    assert scores.columns.tolist()[:5] == ["time", "score", "flag", "episode", "opened"]
    assert "sensor_1" in scores and len(scores) > 600
    assert (Path("run") / "manifest.json").exists() and isinstance(names["pipe"], Pipeline)


def test_python_scores_equal_the_cli_s_for_a_pipeline_saved_from_python(demo_csv, new_csv, tmp_path):
    pipe = Pipeline(detector="mahalanobis").fit(pd.read_csv(demo_csv))
    pipe.save(tmp_path / "run")
    ok("score", tmp_path / "run", new_csv, "--out", tmp_path / "cli.csv", "-q")
    python = pipe.score(pd.read_csv(new_csv))
    python.to_csv(tmp_path / "python.csv", index=False, lineterminator="\n")
    assert (tmp_path / "python.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
    again = Pipeline.load(tmp_path / "run").score(pd.read_csv(new_csv))
    assert again.equals(python)


def test_python_scores_equal_the_cli_s_for_a_run_the_cli_made(runs, new_csv, tmp_path):
    ok("score", runs["mahalanobis"], new_csv, "--out", tmp_path / "cli.csv", "-q")
    pipe = Pipeline.load(runs["mahalanobis"])
    assert pipe.rule.value > 0 and pipe.rule.merge_minutes >= 0
    pipe.score(pd.read_csv(new_csv)).to_csv(tmp_path / "python.csv", index=False, lineterminator="\n")
    assert (tmp_path / "python.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()


def test_the_pipeline_imports_without_tensorflow(tmp_path):
    script = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
              "from lstm_rare_event import Pipeline\nassert 'sklearn' not in sys.modules, 'sklearn imported'\n"
              "print(Pipeline.__name__)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "Pipeline", done.stderr

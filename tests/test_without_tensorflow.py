"""Issue 12 item 4: a scoring host installs the tool without TensorFlow (`pip install
lstm-rare-event`; `[train]` adds it). Every command but training the autoencoder works there,
and training it says which extra to install.

TensorFlow and Keras are made unimportable in a fresh interpreter (``sys.modules[name] = None``
makes ``import name`` fail as if it were not installed), which then runs the commands."""

import json
import os
import subprocess
import sys

from conftest import ROOT, TINY_LSTM, copy_run

SCRIPT = r"""
import json, sys
sys.modules["tensorflow"] = None
sys.modules["keras"] = None
from lstm_rare_event.cli import cli

results = []
for args in json.loads(sys.argv[1]):
    try:
        cli(args, prog_name="lstm-rare-event")
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    results.append(code)
    print(f"\n@@ {code} {' '.join(args[:1])}", file=sys.stderr, flush=True)
print(json.dumps(results))
"""


def run_without_tensorflow(calls, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    calls = [[str(a) for a in call] for call in calls]
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(calls)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_every_command_but_lstm_training_runs_without_tensorflow(runs, new_csv, demo_csv, tmp_path):
    lstm, mahalanobis = copy_run(runs["lstm"], tmp_path, "lstm"), copy_run(runs["mahalanobis"], tmp_path, "maha")
    calls = {
        "demo-data": ["demo-data", "--out", tmp_path / "d.csv", "--rows", "300", "-q"],
        "prepare": ["prepare", demo_csv, "--out", tmp_path / "new", "-q"],
        "train mahalanobis": ["train", tmp_path / "new", "--detector", "mahalanobis", "-q"],
        "train restart": ["train", tmp_path / "new", "--detector", "restart", "--out", tmp_path / "r", "-q"],
        "backtest": ["backtest", demo_csv, "--out", tmp_path / "bt", "--detector", "mahalanobis,restart",
                     "--every", "100", "--replicates", "10", "-q"],
        "inspect architecture": ["inspect", "--lookback", "5", "--features", "59"],
    }
    for name, run_dir in (("lstm", lstm), ("mahalanobis", mahalanobis)):
        calls.update({
            f"threshold {name}": ["threshold", run_dir, "-q"],
            f"evaluate {name}": ["evaluate", run_dir, "-q"],
            f"score {name}": ["score", run_dir, new_csv, "--out", tmp_path / f"{name}.csv", "-q"],
            f"inspect {name}": ["inspect", run_dir],
        })
    calls["compare"] = ["compare", lstm, mahalanobis, "--replicates", "10"]
    codes, stderr = run_without_tensorflow(calls.values(), tmp_path)
    assert dict(zip(calls, codes)) == {name: 0 for name in calls}, stderr
    assert (tmp_path / "lstm.csv").stat().st_size > 0 and (tmp_path / "mahalanobis.csv").stat().st_size > 0


def test_training_the_autoencoder_without_tensorflow_names_the_extra(runs, new_csv, demo_csv, tmp_path):
    lstm = copy_run(runs["lstm"], tmp_path, "lstm")
    before = (lstm / "manifest.json").read_text()
    calls = [
        ["train", lstm, *TINY_LSTM, "-q"],
        ["backtest", demo_csv, "--out", tmp_path / "bt", "--detector", "lstm", *TINY_LSTM, "-q"],
        ["score", lstm, new_csv, "--out", tmp_path / "s.csv", "--engine", "keras", "-q"],
    ]
    codes, stderr = run_without_tensorflow(calls, tmp_path)
    assert codes == [2, 2, 2], stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 3, stderr
    for line in errors:
        assert "needs TensorFlow and Keras, which are not installed" in line
        assert "pip install 'lstm-rare-event[train]'" in line
    assert "--detector mahalanobis or restart" in errors[0] and "--engine numpy" in errors[2]
    assert (lstm / "manifest.json").read_text() == before
    assert not (tmp_path / "s.csv").exists()

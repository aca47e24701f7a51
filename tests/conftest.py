"""Shared test helpers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "sklearn", "matplotlib")


@pytest.fixture
def heavy_imports():
    """``run(code)``: execute ``code`` in a fresh interpreter and return which of the heavy
    modules (TensorFlow, Keras, scikit-learn, matplotlib) it left imported. A fresh process,
    because this one has imported them all already."""

    def run(code: str) -> list[str]:
        probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return eval(done.stdout.strip().splitlines()[-1])

    return run

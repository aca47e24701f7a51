"""Shared test helpers."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
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


# -- the command line and small real runs --------------------------------------------------
from click.testing import CliRunner  # noqa: E402

from lstm_rare_event.cli import cli  # noqa: E402
from lstm_rare_event.synthetic import make_sheet_breaks, write_csv  # noqa: E402

#: a tiny autoencoder: seconds to fit, enough to test the plumbing
TINY_LSTM = ("--encoder", "4,2", "--epochs", "2", "--batch-size", "64")


def invoke(*args):
    """Run the command line in-process; returns click's Result."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args):
    """Run the command line and require exit 0."""
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def fails(code: int, *args, fragment: str = ""):
    """Run the command line and require exit ``code``, one line on stderr containing ``fragment``."""
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert fragment in result.output, result.output
    return result


def built_once(tmp_path_factory, worker_id: str, name: str, build) -> Path:
    """A folder ``build(folder)`` fills, built once per test session for every pytest-xdist
    worker: in the workers' shared base folder, under a lock, so the others wait for it rather
    than build it again (a module fixture is built once per worker that runs its tests)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    folder = (base if worker_id == "master" else base.parent) / name
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").is_file():
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def plant_csv(tmp_path_factory, folder: str, name: str, rows: int, seed: int) -> Path:
    """``rows`` rows of the synthetic plant (``seed``), written once per session."""
    path = tmp_path_factory.mktemp(folder) / name
    write_csv(make_sheet_breaks(rows, seed=seed), path)
    return path


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory):
    """600 rows of the synthetic plant (seed 1)."""
    return plant_csv(tmp_path_factory, "demo", "train.csv", 600, seed=1)


@pytest.fixture(scope="session")
def new_csv(tmp_path_factory):
    """300 rows of another day of the same plant (seed 2)."""
    return plant_csv(tmp_path_factory, "new", "new.csv", 300, seed=2)


@pytest.fixture(scope="session")
def history(tmp_path_factory):
    """3000 rows of the plant (seed 3), about four days: enough history for a few backtest folds."""
    return plant_csv(tmp_path_factory, "bt", "history.csv", 3000, seed=3)


@pytest.fixture(scope="session")
def runs(tmp_path_factory, worker_id, demo_csv):
    """One prepared, trained and thresholded run per detector (tiny autoencoder), built once for
    all workers. Tests that change a run must copy it first (``copy_run``)."""
    def build(base):
        source = base / "train.csv"  # the workers' demo_csv are equal files; the runs read this one
        source.write_bytes(demo_csv.read_bytes())
        prepared = base / "prepared"
        ok("prepare", source, "--out", prepared, "--detrend", "12", "-q")
        for name in DETECTORS:
            extra = TINY_LSTM if name == "lstm" else ()
            ok("train", prepared, "--detector", name, "--out", base / name, "-q", *extra)
            ok("threshold", base / name, "-q")

    base = built_once(tmp_path_factory, worker_id, "runs", build)
    return {name: base / name for name in DETECTORS}


DETECTORS = ("lstm", "mahalanobis", "pca", "restart")


def copy_run(run_dir, tmp_path, name="run"):
    import shutil

    return Path(shutil.copytree(run_dir, tmp_path / name))


#: SKAB's experiments, beside the checkout (tests that read them skip when absent)
SKAB = Path(os.environ.get("SKAB_DIR", ROOT.parent / "shared/data/skab"))


def skab_like(n=120, anomaly=(80, 100), seed=0, jitter=()):
    """Rows written as SKAB writes them: 1-second `datetime` (2-second steps after the rows in
    ``jitter``), `.` decimals, 0.0/1.0 `anomaly` labels on the rows ``anomaly`` spans."""
    rng = np.random.default_rng(seed)
    step = np.ones(n, dtype=int)
    step[0] = 0
    step[list(jitter)] = 2
    times = pd.Timestamp("2020-03-09 10:14:33") + pd.to_timedelta(np.cumsum(step), unit="s")
    data = {"datetime": times.strftime("%Y-%m-%d %H:%M:%S")}
    for name in ("Accelerometer1RMS", "Current", "Volume Flow RateRMS"):
        data[name] = rng.normal(1.0, 0.1, n).round(6)
    label = np.zeros(n)
    label[anomaly[0]:anomaly[1]] = 1.0
    data["anomaly"], data["changepoint"] = label, np.zeros(n)
    return pd.DataFrame(data)


def write_days(frame: pd.DataFrame, folder: Path, name="{day}.csv") -> list[Path]:
    """``frame`` (``make_sheet_breaks``' times) split into one CSV per calendar day, as a
    historian's export folder holds them: ``folder/2024-03-01.csv``, ... in time order."""
    folder.mkdir(parents=True, exist_ok=True)
    days = pd.to_datetime(frame["time"], format="%m/%d/%y %H:%M").dt.strftime("%Y-%m-%d")
    paths = []
    for day, rows in frame.groupby(days, sort=True):
        path = folder / name.format(day=day)
        write_csv(rows, path)
        paths.append(path)
    return paths

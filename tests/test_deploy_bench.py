"""bench/deploy.py reads the deployment from examples/crontab as written: the score line's
dates become the replayed day and its absolute paths land inside the replay folder. The replay
itself (half an hour and more) is a benchmark (`make bench`), not a test."""

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def deploy():
    spec = importlib.util.spec_from_file_location("deploy_bench", ROOT / "bench/deploy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "bench"))  # its constants come from bench/common.py
        spec.loader.exec_module(module)
    return module


def test_the_real_crontab_is_replayed_on_the_replayed_day(deploy, tmp_path):
    lines = deploy.parse_crontab((ROOT / "examples/crontab").read_text())
    words = lines["score"].render(pd.Timestamp("1999-05-18"), tmp_path)
    assert words[1] == "score"
    assert "incoming/1999-05-17.csv" in words and "incoming/1999-05-18.csv" in words
    assert words[words.index("--out") + 1] == "scores/1999-05-18.csv"
    assert words[words.index("--state") + 1] == "state/score.state"
    metrics = Path(words[words.index("--metrics") + 1])
    assert metrics.is_relative_to(tmp_path / "root")  # never the host's /var/lib/node_exporter
    nightly = lines["nightly"]
    assert (nightly.hour, nightly.minute) == ("1", "30")
    assert nightly.words[:3] == ("make", "-f", "examples/Makefile") and "nightly" in nightly.words


def test_a_date_the_replay_cannot_give_is_refused(deploy):
    line = "*/2 * * * * cd /srv && /bin/lstm-rare-event score run incoming/$(date -d '2 days ago' +\\%F).csv\n" \
           "30 1 * * * cd /srv && make -f examples/Makefile nightly\n"
    with pytest.raises(ValueError, match="cannot replay"):
        deploy.parse_crontab(line)


def test_the_budget_is_the_makefiles_and_lines_count_by_prefix(deploy):
    assert deploy.budget(ROOT / "examples/Makefile") == 1.0
    stderr = ("2026-12-05T07:43:52+00:00 alert: alarm episode 1 opened\n"
              "warning: drift since ...\nError: run: no such run directory\nsomething else\n")
    assert deploy.count_lines(stderr) == {"alert": 1, "warning": 1, "error": 0, "Error": 1, "other": 1}


def test_carry_grid_carries_each_night_from_the_threshold_kept_the_night_before():
    spec = importlib.util.spec_from_file_location("carry_grid_bench", ROOT / "bench/carry_grid.py")
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "bench"))
        spec.loader.exec_module(module)
    assert module.chain([10.0, 40.0, 40.0], 0.0) == [10.0, 40.0, 40.0]  # W = 0: the replay as it ran
    assert module.chain([10.0, 40.0, 40.0], 0.5) == pytest.approx([10.0, 20.0, (20.0 * 40.0) ** 0.5])

"""demo-data: the synthetic sheet-break data set and its command."""

import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from lstm_rare_event import synthetic
from lstm_rare_event.cli import cli
from lstm_rare_event.errors import UserError

REAL_TIME_FORMAT = "%m/%d/%y %H:%M"


@pytest.fixture(scope="module")
def frame():
    return synthetic.make_sheet_breaks(rows=6000, seed=3)


def minutes_between_rows(frame):
    times = pd.to_datetime(frame["time"], format=REAL_TIME_FORMAT)
    return times.diff().dt.total_seconds().to_numpy()[1:] / 60


def breaks(frame):
    return np.flatnonzero(frame["y"].to_numpy())


def standardized(frame):
    sensors = frame[synthetic.NUMERIC]
    return (sensors - sensors.median()) / sensors.std()


def run_demo_data(*args):
    return CliRunner().invoke(cli, ["demo-data", *args])


def test_columns_are_the_real_schema_in_order(frame):
    assert list(frame.columns) == ["time", "y"] + [f"x{i}" for i in range(1, 62)]
    assert len(frame) == 6000
    assert frame[synthetic.NUMERIC].notna().all().all()


def test_time_starts_on_may_1_1999_every_2_minutes_in_the_real_format(frame):
    assert list(frame["time"][:3]) == ["5/1/99 0:00", "5/1/99 0:02", "5/1/99 0:04"]
    # No leading zeros in month, day or hour; minutes always two digits.
    assert frame["time"].str.fullmatch(r"[1-9]\d?/[1-9]\d?/99 (0|[1-9]\d?):\d\d").all()
    steps = minutes_between_rows(frame)
    assert (steps > 0).all()
    assert np.mean(steps == 2) > 0.99


def test_about_0_7_percent_breaks_never_adjacent(frame):
    rows = breaks(frame)
    assert 0.005 <= len(rows) / len(frame) <= 0.009
    assert set(frame["y"].unique()) == {0, 1}
    assert (np.diff(rows) > 1).all()
    assert rows[-1] < len(frame) - 1


def test_downtime_after_each_break_is_a_time_gap(frame):
    steps = minutes_between_rows(frame)
    after_break = breaks(frame)  # steps[i] is the time from row i to row i + 1
    assert ((steps[after_break] >= 20) & (steps[after_break] <= 300)).all()
    assert (np.delete(steps, after_break) == 2).all()


def test_sensors_restart_near_their_baseline(frame):
    """Right after the gap the slow processes start again from their baseline, so readings sit
    closer to their grade's median than on a typical row."""
    by_grade = frame[synthetic.NUMERIC].groupby(frame["x28"])
    distance = ((frame[synthetic.NUMERIC] - by_grade.transform("median")) / by_grade.transform("std")).abs()
    restarts = breaks(frame) + 1
    assert distance.iloc[restarts].to_numpy().mean() < 0.7 * distance.to_numpy().mean()


def test_grade_code_x28_uses_the_real_codes_in_long_runs(frame):
    assert set(frame["x28"].unique()) <= {96, 82, 118, 139, 84, 112, 93, 51}
    run_lengths = frame.groupby((frame["x28"] != frame["x28"].shift()).cumsum()).size()
    assert len(run_lengths) >= 5
    assert run_lengths.iloc[:-1].min() >= 100  # hours, not minutes (the last run is cut short)


def test_grade_changes_shift_sensor_levels(frame):
    level_by_grade = standardized(frame).groupby(frame["x28"]).mean()
    shifted = (level_by_grade.max() - level_by_grade.min()) > 1.0
    assert shifted.sum() >= 20


def test_x61_is_a_rare_0_1_flag():
    frame = synthetic.make_sheet_breaks(rows=20000, seed=1)
    assert set(frame["x61"].unique()) <= {0, 1}
    assert 0 < frame["x61"].sum() < 0.005 * len(frame)


def test_sensors_are_correlated(frame):
    """Shared latent factors give the autoencoder structure to learn, beyond the grade levels
    (about a fifth of the real file's sensor pairs correlate by more than 0.3 within a grade)."""
    sensors = frame[synthetic.NUMERIC]
    within_grade = sensors - sensors.groupby(frame["x28"]).transform("mean")
    corr = within_grade.corr().abs().to_numpy()
    off_diagonal = corr[~np.eye(len(corr), dtype=bool)]
    assert np.mean(off_diagonal > 0.3) > 0.1


def test_culprit_sensors_drift_in_the_rows_before_a_break(frame):
    """What makes the demo meaningful: over the 2 rows before each break the culprit sensors
    stray much further from their recent median than they do elsewhere; other sensors do not."""
    z = standardized(frame)
    deviation = (z - z.rolling(10).median().shift(1)).abs()
    rows = breaks(frame)
    before = np.concatenate([rows - 1, rows - 2])
    elsewhere = np.ones(len(frame), dtype=bool)
    elsewhere[:20] = False
    for offset in range(-7, 12):  # the drift, the break and the restart after it
        elsewhere[np.clip(rows + offset, 0, len(frame) - 1)] = False

    culprits = list(synthetic.CULPRITS)
    others = [name for name in synthetic.NUMERIC if name not in culprits]
    assert deviation[culprits].iloc[before].to_numpy().mean() > 2 * deviation[culprits][elsewhere].to_numpy().mean()
    assert deviation[others].iloc[before].to_numpy().mean() < 1.5 * deviation[others][elsewhere].to_numpy().mean()


def test_frame_equals_the_file_it_writes(frame, tmp_path):
    path = tmp_path / "demo.csv"
    synthetic.write_csv(frame, path)
    text = path.read_text(encoding="utf-8")
    assert "\r" not in text
    assert text.endswith("\n")
    assert not re.search(r"\de[-+]", text)  # fixed notation, as in the real file
    assert pd.read_csv(path).equals(frame)


def test_too_few_rows_is_a_user_error():
    with pytest.raises(UserError, match="rows=10"):
        synthetic.make_sheet_breaks(rows=10)
    with pytest.raises(UserError, match="break rate"):
        synthetic.make_sheet_breaks(rows=1000, break_rate=0.5)


def test_smallest_data_set_still_has_a_break():
    frame = synthetic.make_sheet_breaks(rows=synthetic.MIN_ROWS, seed=5)
    assert frame["y"].sum() == 1


def test_cli_writes_the_file_and_logs_one_summary_line(tmp_path):
    path = tmp_path / "sub" / "demo.csv"
    result = run_demo_data("--out", str(path), "--rows", "500", "--seed", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    stamp, line = result.stderr.strip().split(" ", 1)  # not a terminal: an ISO timestamp first
    assert line == f"demo-data: 500 rows, 4 breaks -> {path}" and stamp[:4].isdigit() and "T" in stamp
    assert pd.read_csv(path).shape == (500, 63)


def test_cli_same_seed_gives_identical_bytes_and_other_seeds_differ(tmp_path):
    paths = {}
    for name, seed in [("a", "7"), ("b", "7"), ("c", "8")]:
        paths[name] = tmp_path / f"{name}.csv"
        assert run_demo_data("--out", str(paths[name]), "--seed", seed, "--quiet").exit_code == 0
    assert paths["a"].read_bytes() == paths["b"].read_bytes()
    assert paths["a"].read_bytes() != paths["c"].read_bytes()


@pytest.mark.parametrize("args, fragment", [(("--rows", "10"), "rows=10"), (("--seed", "-3"), "seed -3")])
def test_cli_rejects_bad_sizes_and_seeds_with_one_line_and_writes_nothing(tmp_path, args, fragment):
    path = tmp_path / "demo.csv"
    result = run_demo_data("--out", str(path), *args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and fragment in result.stderr
    assert not path.exists()


def test_cli_writes_gzip_for_a_gz_path(tmp_path):
    path = tmp_path / "demo.csv.gz"
    result = run_demo_data("--out", str(path), "--rows", "200", "--seed", "2", "--quiet")
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert pd.read_csv(path).shape == (200, 63)


def test_a_long_file_is_made_in_spans_of_one_plant(monkeypatch, tmp_path):
    monkeypatch.setattr(synthetic, "SPAN_ROWS", 1000)
    frames = list(synthetic.spans(2030, seed=4))
    assert [len(f) for f in frames] == [1000, 1030]  # a last span shorter than MIN_ROWS joins the one before
    pd.testing.assert_frame_equal(frames[0], synthetic.make_sheet_breaks(1000, seed=4))
    times = pd.to_datetime(pd.concat(frames)["time"], format="%m/%d/%y %H:%M")
    steps = times.diff().dropna()
    assert (steps > pd.Timedelta(0)).all()
    assert steps.iloc[999] >= pd.Timedelta(minutes=synthetic.GAP_MINUTES[0])  # a downtime between spans
    assert all(f["y"].sum() > 0 for f in frames)
    path = tmp_path / "long.csv"
    assert synthetic.write_csv(synthetic.spans(2030, seed=4), path) == (2030, int(sum(f["y"].sum() for f in frames)))
    written = pd.read_csv(path)
    assert list(written.columns) == synthetic.COLUMNS and len(written) == 2030
    assert (written["time"] == pd.concat(frames)["time"].to_numpy()).all()

"""The Preprocessor: one transform for prepare, score and near-real-time scoring.

Its promises: a saved and loaded preprocessor gives the same windows; ``transform`` on the
training table gives exactly the windows prepare put in the splits; a tail of the last
``context_rows`` rows (``context_start`` in every case) is enough to make the next windows
exactly; ``segment_start`` is the last restart; broken files and options are one-line errors.
"""

import json
import re
import shutil

import numpy as np
import pytest

from conftest import fails, ok
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.csv import Table, read_table
from lstm_rare_event.preprocess.preprocessor import CONFIG_JSON, SCALER_NPZ, PreprocessOptions, Preprocessor
from lstm_rare_event.preprocess.windows import SPLITS, Windows, load_rows, load_split, save_splits
from lstm_rare_event.run import PREPROCESSOR, Run
from lstm_rare_event.steps.prepare import PrepareOptions, prepare
from test_prepare import frame, write

#: breaks with and without downtime after them, gaps with and without a break before them,
#: and two breaks in a row
BREAKS, GAPS = [30, 31, 60, 90, 140], [45, 100, 141]
OPTIONS = {
    "default": dict(),
    "gaps": dict(allow_gaps=True),
    "recipe": dict(allow_gaps=True, detrend=0, clip=0, shift=1),
    "short": dict(lookback=1, detrend=3),
    "shift0": dict(shift=0, lookback=4, detrend=7),
}


@pytest.fixture(scope="module")
def hand_csv(tmp_path_factory):
    return write(frame(180, breaks=BREAKS, gaps=GAPS, features=3), tmp_path_factory.mktemp("hand") / "hand.csv")


def csv_for(which, demo_csv, hand_csv):
    return demo_csv if which == "demo" else hand_csv


def unlabelled(table: Table) -> Table:
    return Table(table.time, table.values, table.features, None)


def head(table: Table, stop: int) -> Table:
    return Table(table.time[:stop], table.values[:stop], table.features, None if table.y is None else table.y[:stop])


def tail(table: Table, start: int) -> Table:
    return Table(table.time[start:], table.values[start:], table.features, None if table.y is None else table.y[start:])


def assert_same(a: Windows, b: Windows):
    assert len(a) == len(b)
    for name in Windows.FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def ending_from(windows: Windows, since) -> Windows:
    return windows.subset(windows.end_time >= since)


# -- save and load ------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["demo", "hand"])
def test_save_load_round_trip_gives_identical_windows(tmp_path, demo_csv, hand_csv, new_csv, which):
    path = csv_for(which, demo_csv, hand_csv)
    options = PrepareOptions(features=("x3", "x1"), detrend=5, clip=2.5) if which == "hand" else PrepareOptions()
    pre = prepare(path, options).preprocessor
    pre.save(tmp_path / "pre")
    assert sorted(p.name for p in (tmp_path / "pre").iterdir()) == [CONFIG_JSON, SCALER_NPZ]  # no pickle
    loaded = Preprocessor.load(tmp_path / "pre")
    assert loaded.options == options.preprocess
    assert loaded.features_ == pre.features_ and loaded.interval_ == pre.interval_
    np.testing.assert_array_equal(loaded.mean_, pre.mean_)
    np.testing.assert_array_equal(loaded.scale_, pre.scale_)
    tables = [read_table(path, options.features, options.drop)]
    if which == "demo":
        tables.append(read_table(new_csv, labels="optional"))
    for table in tables:
        assert_same(loaded.transform(table), pre.transform(table))
        assert_same(loaded.transform(unlabelled(table)), pre.transform(unlabelled(table)))


def test_windows_save_load_keeps_every_field(tmp_path, demo_csv):
    windows = prepare(demo_csv).splits["train"]
    save_splits(tmp_path / "rows.npy", {"train": tmp_path / "w.npz"}, {"train": windows})
    loaded = load_split(tmp_path / "w.npz", load_rows(tmp_path / "rows.npy"))
    assert_same(loaded, windows)
    assert loaded.segment_start.dtype == windows.end_time.dtype == np.dtype("datetime64[s]")


def test_run_holds_the_preprocessor_prepare_fitted(tmp_path, demo_csv):
    ok("prepare", demo_csv, "--out", tmp_path / "run", "--detrend", "12", "-q")
    files = sorted(str(p.relative_to(tmp_path / "run")) for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert f"{PREPROCESSOR}/{CONFIG_JSON}" in files and f"{PREPROCESSOR}/{SCALER_NPZ}" in files
    assert not [f for f in files if f.endswith((".joblib", ".pkl", ".pickle"))]
    run = Run(tmp_path / "run")
    pre = run.preprocessor()
    fresh = prepare(demo_csv, PrepareOptions(detrend=12))
    np.testing.assert_array_equal(pre.mean_, fresh.preprocessor.mean_)
    for name in SPLITS:
        assert_same(run.split(name), fresh.splits[name])


# -- transform is what prepare did --------------------------------------------------------
@pytest.mark.parametrize("which", ["demo", "hand"])
@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_transform_of_the_training_table_is_the_prepared_windows(demo_csv, hand_csv, which, case):
    path = csv_for(which, demo_csv, hand_csv)
    options = PrepareOptions(split="time", **OPTIONS[case])
    prepared = prepare(path, options)
    prepared_all = Windows.concat([prepared.splits[name] for name in SPLITS])
    every = prepared.preprocessor.transform(read_table(path))
    assert (np.diff(every.end_time) > np.timedelta64(0, "s")).all()
    assert (np.diff(prepared_all.end_time) > np.timedelta64(0, "s")).all()  # time split: in order
    # every prepared window is a window of transform, identical in every field
    at = np.minimum(np.searchsorted(every.end_time, prepared_all.end_time), len(every) - 1)
    np.testing.assert_array_equal(every.end_time[at], prepared_all.end_time)
    assert_same(every.subset(at), prepared_all)
    # the windows transform has beyond them are only those prepare cannot use: with --allow-gaps
    # the first two (the recipe's indexing starts two windows late), and those straddling a cut
    missing = np.setdiff1d(every.end_time, prepared_all.end_time)
    late = every.end_time[:2] if options.allow_gaps else every.end_time[:0]
    assert set(late) <= set(missing)
    straddling = np.setdiff1d(missing, late)
    assert len(straddling) <= 2 * (options.lookback - 1)
    first = {name: prepared.splits[name].end_time.min() for name in SPLITS}
    last = {name: prepared.splits[name].end_time.max() for name in SPLITS}
    for end in straddling:
        assert last["train"] < end < first["valid"] or last["valid"] < end < first["test"]


def test_recipe_indexing_starts_two_windows_late(hand_csv):
    prepared = prepare(hand_csv, PrepareOptions(split="random", allow_gaps=True, lookback=5))
    every = prepared.preprocessor.transform(read_table(hand_csv))
    ends = np.sort(np.concatenate([w.end_time for w in prepared.splits.values()]))
    np.testing.assert_array_equal(ends, every.end_time[2:])
    assert len(every) == prepared.info["rows_after_shift"] - 5 + 1


# -- the near-real-time contract ----------------------------------------------------------
@pytest.mark.parametrize("options, expected", [
    (PreprocessOptions(), 30 + 5 - 1),
    (PreprocessOptions(detrend=0, lookback=1), 0),
    (PreprocessOptions(detrend=7, lookback=4), 10),
    (PreprocessOptions(detrend=0, lookback=5, allow_gaps=True), 4),
])
def test_context_rows_is_detrend_plus_lookback_minus_one(options, expected):
    assert options.context_rows == expected == options.detrend + options.lookback - 1
    assert Preprocessor(options).context_rows == expected


def _fitted(path, case):
    return prepare(path, PrepareOptions(split="time", **OPTIONS[case])).preprocessor


def _case(which, demo_csv, hand_csv, case, labels):
    """(the preprocessor fitted for ``case``, the table it reads, with or without labels)."""
    path = csv_for(which, demo_csv, hand_csv)
    table = read_table(path)
    return _fitted(path, case), table if labels else unlabelled(table)


# Labelled rows with --allow-gaps and a shift: windows span dropped break rows, which
# context_rows does not count (context_start does; see the tests below).
CONTEXT_ROWS_CASES = [(case, labels) for case in sorted(OPTIONS) for labels in (False, True)
                      if not (labels and OPTIONS[case].get("allow_gaps") and OPTIONS[case].get("shift", 2) > 0)]


@pytest.mark.parametrize("which", ["demo", "hand"])
@pytest.mark.parametrize("case, labels", CONTEXT_ROWS_CASES)
def test_last_context_rows_make_the_same_last_windows(demo_csv, hand_csv, which, case, labels):
    """Scoring the last context_rows + k rows gives the windows ending in the last k rows
    exactly as scoring the whole table does (k = 1, ..., and every cut point)."""
    pre, table = _case(which, demo_csv, hand_csv, case, labels)
    whole = pre.transform(table)
    whole_rows = pre.rows(table)
    for k in range(1, len(table) - pre.context_rows, 1 if which == "hand" else 47):
        start = len(table) - pre.context_rows - k
        since = table.time[-k]
        part = pre.transform(tail(table, start))
        ours, theirs = ending_from(part, since), ending_from(whole, since)
        # segment_start aside (the tail does not know when its first segment began)...
        for name in ("X", "y", "end_time", "event_time"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name), err_msg=f"{name}, k={k}")
        # ...which the score path passes on: then every field is the same
        rows = pre.rows(tail(table, start), first_segment_start=whole_rows.table_segment_start[start])
        assert_same(ending_from(pre.windows(rows, pre.window_ends(rows)), since), theirs)


@pytest.mark.parametrize("which", ["demo", "hand"])
@pytest.mark.parametrize("case", sorted(OPTIONS))
@pytest.mark.parametrize("labels", [False, True])
def test_context_start_makes_the_same_next_windows(demo_csv, hand_csv, which, case, labels):
    """Chunked scoring: the rows read so far from ``context_start`` on, followed by the rows
    after them, give the windows ending in those later rows exactly as one pass does, in every
    case, including windows spanning dropped break rows (labelled rows with --allow-gaps)."""
    pre, table = _case(which, demo_csv, hand_csv, case, labels)
    whole = pre.transform(table)
    for cut in range(1, len(table), 1 if which == "hand" else 47):
        before = pre.rows(head(table, cut))
        start = pre.context_start(before)
        assert start <= max(cut - pre.context_rows, 0)
        first_segment_start = before.table_segment_start[start] if start < cut else None
        rows = pre.rows(tail(table, start), first_segment_start=first_segment_start)
        ends = pre.window_ends(rows)
        ends = ends[rows.source_row[ends] >= cut - start]  # windows ending in the rows after the cut
        assert_same(pre.windows(rows, ends), ending_from(whole, table.time[cut]))


def test_context_rows_alone_is_too_short_for_windows_across_dropped_breaks(hand_csv):
    """Why context_start exists: with --allow-gaps, a window spans a dropped break row, so it
    reaches one raw row further back than context_rows counts."""
    pre = _fitted(hand_csv, "gaps")
    table = read_table(hand_csv)
    whole = pre.transform(table)
    k = len(table) - 91  # windows ending after the break at row 90 (rows 91, 92, ...)
    start = len(table) - pre.context_rows - k
    since = table.time[-k]
    part = ending_from(pre.transform(tail(table, start)), since)
    assert not np.array_equal(part.X, ending_from(whole, since).X)
    assert pre.context_start(pre.rows(table)) == len(table) - pre.context_rows  # no break near the end
    assert pre.context_start(pre.rows(head(table, 91))) == 91 - pre.context_rows - 1  # break row 90 dropped


# -- segment_start ------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["demo", "hand"])
@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_segment_start_is_the_last_restart(demo_csv, hand_csv, which, case):
    path = csv_for(which, demo_csv, hand_csv)
    prepared = prepare(path, PrepareOptions(split="time", **OPTIONS[case]))
    pre = prepared.preprocessor
    table = read_table(path)
    step = np.diff(table.time)
    # restarts: the first row, and every row after a step longer than the cadence (not a break row)
    restarts = np.concatenate([table.time[:1], table.time[1:][step > pre.interval_]])
    assert len(restarts) == 1 + (len(GAPS) if which == "hand" else 4)
    for windows in [pre.transform(table), pre.transform(unlabelled(table)), *prepared.splits.values()]:
        last = restarts[np.searchsorted(restarts, windows.end_time, side="right") - 1]
        np.testing.assert_array_equal(windows.segment_start, last)
        assert (windows.segment_start <= windows.end_time).all()


def test_segment_start_of_a_chunk_continues_the_stream(hand_csv):
    pre = _fitted(hand_csv, "default")
    table = read_table(hand_csv)
    rows = pre.rows(tail(table, 120), first_segment_start=np.datetime64("1999-04-30T00:00", "s"))
    # rows 120..140 continue the segment that began before the chunk; 141 restarts after a gap
    assert (rows.table_segment_start[:21] == np.datetime64("1999-04-30T00:00", "s")).all()
    assert (rows.table_segment_start[21:] == table.time[141]).all()


# -- broken preprocessor files ------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory, demo_csv):
    folder = tmp_path_factory.mktemp("pre") / "preprocessor"
    prepare(demo_csv).preprocessor.save(folder)
    return folder


def _broken_copy(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "preprocessor")


def _config_keys(saved):
    config = json.loads((saved / CONFIG_JSON).read_text())
    assert config["options"]["features"] is None  # present, as null
    return [(k,) for k in config] + [("options", k) for k in config["options"]]


@pytest.mark.parametrize("key", ["format", "options", "features", "interval_seconds", "options.shift",
                                 "options.lookback", "options.drop", "options.features", "options.allow_gaps",
                                 "options.detrend", "options.clip"])
def test_missing_key_in_preprocessor_json_names_file_and_key(saved, tmp_path, key):
    assert tuple(key.split(".")) in _config_keys(saved)  # the list above is every key written
    folder = _broken_copy(saved, tmp_path)
    config = json.loads((folder / CONFIG_JSON).read_text())
    *outer, last = key.split(".")
    holder = config[outer[0]] if outer else config
    del holder[last]
    (folder / CONFIG_JSON).write_text(json.dumps(config))
    with pytest.raises(UserError) as error:
        Preprocessor.load(folder, "re-run prepare")
    message = str(error.value)
    assert str(folder / CONFIG_JSON) in message and f"'{last}'" in message and "missing" in message, message
    assert "re-run prepare" in message and "\n" not in message


# Keys added after runs were first written: a file without them (an older run) reads the defaults.
ADDED_KEYS = ["options.time_column", "options.label_column", "options.time_format", "options.max_gap",
              "options.labels", "max_gap_seconds", "sep", "decimal"]


def test_every_written_key_is_checked(saved):
    assert len(_config_keys(saved)) == 11 + len(ADDED_KEYS)


def test_older_preprocessor_json_reads_the_defaults_of_added_keys(saved, tmp_path):
    folder = _broken_copy(saved, tmp_path)
    config = json.loads((folder / CONFIG_JSON).read_text())
    for key in ADDED_KEYS:
        *outer, last = key.split(".")
        del (config[outer[0]] if outer else config)[last]
    (folder / CONFIG_JSON).write_text(json.dumps(config))
    older, saved = Preprocessor.load(folder), Preprocessor.load(saved)
    assert older.options == saved.options
    # Before --max-gap, every step longer than the cadence was a time gap.
    assert older.max_gap_ == older.interval_ < saved.max_gap_


@pytest.mark.parametrize("key, value", [("time_column", 5), ("label_column", None), ("time_format", "dd.mm"),
                                        ("max_gap", "soon"), ("labels", "points")])
def test_bad_added_key_names_file_and_key(saved, tmp_path, key, value):
    folder = _broken_copy(saved, tmp_path)
    config = json.loads((folder / CONFIG_JSON).read_text())
    config["options"][key] = value
    (folder / CONFIG_JSON).write_text(json.dumps(config))
    with pytest.raises(UserError) as error:
        Preprocessor.load(folder, "re-run prepare")
    message = str(error.value)
    assert str(folder / CONFIG_JSON) in message and "re-run prepare" in message, message


@pytest.mark.parametrize("change, key", [
    (lambda a: {**a, "mean": a["mean"][:-1]}, "mean"),
    (lambda a: {**a, "scale": np.concatenate([a["scale"], [1.0]])}, "scale"),
    (lambda a: {**a, "mean": a["mean"].reshape(1, -1)}, "mean"),
    (lambda a: {**a, "scale": a["scale"] * 0}, "scale"),
    (lambda a: {**a, "mean": a["mean"] * np.nan}, "mean"),
    (lambda a: {"mean": a["mean"]}, "scale"),
])
def test_scaler_of_the_wrong_shape_names_file_and_key(saved, tmp_path, change, key):
    folder = _broken_copy(saved, tmp_path)
    with np.load(folder / SCALER_NPZ) as data:
        arrays = {name: data[name] for name in data.files}
    with open(folder / SCALER_NPZ, "wb") as handle:
        np.savez(handle, **change(arrays))
    with pytest.raises(UserError) as error:
        Preprocessor.load(folder)
    message = str(error.value)
    assert str(folder / SCALER_NPZ) in message and "\n" not in message, message
    assert re.search(rf"\b{key}\b", message.replace(str(folder), "")), message


def test_missing_files_are_user_errors(saved, tmp_path):
    for name in (CONFIG_JSON, SCALER_NPZ):
        folder = tmp_path / name
        shutil.copytree(saved, folder)
        (folder / name).unlink()
        with pytest.raises(UserError, match=re.escape(str(folder / name))):
            Preprocessor.load(folder)


# -- options ------------------------------------------------------------------------------
@pytest.mark.parametrize("clip", [float("inf"), float("-inf"), float("nan"), -1.0])
def test_clip_must_be_finite_and_not_negative(clip):
    with pytest.raises(UserError, match="--clip"):
        PreprocessOptions(clip=clip)
    with pytest.raises(UserError, match="--clip"):
        PrepareOptions(clip=clip)


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_clip_inf_or_nan_refused_on_the_command_line(tmp_path, demo_csv, value):
    fails(2, "prepare", demo_csv, "--out", tmp_path / "run", "--clip", value, fragment="--clip")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("features, fragment", [
    (("y", "x1"), "may not include 'y'"),
    (("time", "x1"), "may not include 'time'"),
    (("x1", "x1"), "names x1 more than once"),
    (("x1", "x2", "x1", "x2"), "names x1, x2 more than once"),
])
def test_features_must_be_distinct_sensors(features, fragment):
    with pytest.raises(UserError, match="--features") as error:
        PreprocessOptions(features=features)
    assert fragment in str(error.value)


@pytest.mark.parametrize("value, fragment", [("y,x1", "may not include 'y'"), ("x1,x1", "x1 more than once")])
def test_features_refused_on_the_command_line(tmp_path, demo_csv, value, fragment):
    result = fails(2, "prepare", demo_csv, "--out", tmp_path / "run", "--features", value, fragment=fragment)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_loaded_options_are_checked_again(saved, tmp_path):
    folder = _broken_copy(saved, tmp_path)
    config = json.loads((folder / CONFIG_JSON).read_text())
    config["options"]["features"] = ["x1", "x1"]
    (folder / CONFIG_JSON).write_text(json.dumps(config))
    with pytest.raises(UserError, match=re.escape(str(folder / CONFIG_JSON))):
        Preprocessor.load(folder)


def _pandas_trailing_median(values, segment, window):
    """The reference: the pandas groupby rolling median that detrend used before (issue 12)."""
    import pandas as pd

    frame = pd.DataFrame(values)
    including_now = frame.groupby(segment, sort=False).rolling(window, min_periods=1).median() \
        .reset_index(level=0, drop=True).sort_index()
    past = including_now.groupby(segment, sort=False).shift(1).to_numpy(copy=True)
    first = np.isnan(past).all(axis=1)
    past[first] = values[first]
    return past


@pytest.mark.parametrize("kind", ["normal", "ties", "rounded"])
def test_trailing_median_gives_the_bytes_of_pandas_rolling_median(kind):
    from lstm_rare_event.preprocess.detrend import trailing_median

    rng = np.random.default_rng({"normal": 1, "ties": 2, "rounded": 3}[kind])
    for _ in range(40):
        n, f, window = int(rng.integers(1, 300)), int(rng.integers(1, 5)), int(rng.integers(1, 35))
        values = {"normal": lambda: rng.normal(size=(n, f)) * 1e3,
                  "ties": lambda: rng.integers(-3, 4, size=(n, f)).astype(float),
                  "rounded": lambda: np.round(rng.normal(size=(n, f)) * 1e3) / 7}[kind]()
        segment = np.cumsum(rng.random(n) < rng.choice([0.0, 0.02, 0.2, 0.6]))
        expected = _pandas_trailing_median(values, segment, window)
        assert trailing_median(values, segment, window).tobytes() == expected.tobytes(), (n, f, window)


@pytest.mark.parametrize("kind", ["normal", "ties", "zeros"])
def test_ranked_medians_are_the_sorted_windows_medians_over_many_groups(kind):
    """The ranked medians (windows of up to 32 rows) against sorting every window, on columns
    long enough for many groups and several blocks of groups; zeros of both signs tie, and
    only the sign of a zero median may differ (NumPy's vectorized sort does not keep it)."""
    from lstm_rare_event.preprocess.detrend import GROUP, GROUPS, _medians, _ranked_medians

    rng = np.random.default_rng({"normal": 5, "ties": 6, "zeros": 7}[kind])
    n = GROUPS * GROUP + 321
    values = {"normal": lambda: rng.normal(size=(3, n)) * 1e3,
              "ties": lambda: rng.integers(-3, 4, size=(3, n)).astype(float),
              "zeros": lambda: rng.choice([-0.0, 0.0, 1.0, -1.0], size=(3, n))}[kind]()
    for window in (1, 2, 3, 29, 30, 31, 32):
        starts = np.arange(n - window + 1)
        sorted_ = np.empty((len(starts), 3))
        _medians(values, starts, window, sorted_, starts)
        ranked = _ranked_medians(values, window)
        assert ranked.shape == (3, len(starts))
        assert (ranked.T + 0.0).tobytes() == (sorted_ + 0.0).tobytes(), window

"""Historian exports as they come: tab- and semicolon-separated CSV with a decimal comma
(--sep, --decimal), Parquet (the [parquet] extra), and refusals that name the option to use."""

import sys

import numpy as np
import pandas as pd
import pytest
from conftest import fails, ok

from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.csv import read_csv, read_table


@pytest.fixture(scope="module")
def frame(demo_csv):
    return pd.read_csv(demo_csv, dtype={"time": str})


@pytest.fixture(scope="module")
def reference(demo_csv):
    return read_table(demo_csv)


def write(frame, path, **options):
    frame.to_csv(path, index=False, **options)
    return path


@pytest.mark.parametrize("name, options, read", [
    ("semicolon.csv", {"sep": ";", "decimal": ","}, {"sep": ";", "decimal": ","}),
    ("tab.tsv", {"sep": "\t"}, {"sep": "tab"}),
    ("tab-escaped.tsv", {"sep": "\t"}, {"sep": "\\t"}),
    ("semicolon-dot.csv", {"sep": ";"}, {"sep": ";"}),
])
def test_other_separators_read_the_same_table(frame, reference, tmp_path, name, options, read):
    table = read_table(write(frame, tmp_path / name, **options), **read)
    assert table.features == reference.features
    np.testing.assert_array_equal(table.time, reference.time)
    np.testing.assert_allclose(table.values, reference.values, rtol=1e-12)
    np.testing.assert_array_equal(table.y, reference.y)


@pytest.mark.parametrize("options, given, hint", [
    ({"sep": ";", "decimal": ","}, {}, "looks semicolon-separated; try --sep ';' --decimal ','"),
    ({"sep": ";"}, {}, "looks semicolon-separated; try --sep ';'"),
    ({"sep": "\t"}, {}, "looks tab-separated; try --sep tab"),
    ({"sep": ";", "decimal": ","}, {"sep": ";"}, "numbers have a decimal comma (like 1,5); try --decimal ','"),
])
def test_a_refused_format_names_the_option_that_reads_it(frame, tmp_path, options, given, hint):
    path = write(frame.head(50), tmp_path / "export.csv", **options)
    with pytest.raises(UserError) as caught:
        read_table(path, **given)
    assert str(caught.value).endswith(hint)
    assert str(caught.value).startswith(str(path))


def test_no_hint_for_a_plain_comma_file_with_one_bad_column(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("time\n2020-01-01T00:00\n")
    with pytest.raises(UserError, match="no sensor columns"):
        read_table(path)


def test_bad_separator_options(demo_csv):
    with pytest.raises(UserError, match="--sep"):
        read_csv(demo_csv, sep=";;")
    with pytest.raises(UserError, match="both ','"):
        read_csv(demo_csv, sep=",", decimal=",")


def test_prepare_and_backtest_take_sep_and_decimal(frame, tmp_path):
    path = write(frame, tmp_path / "export.csv", sep=";", decimal=",")
    fails(2, "prepare", path, "--out", tmp_path / "refused", fragment="try --sep ';' --decimal ','")
    ok("prepare", path, "--out", tmp_path / "run", "--sep", ";", "--decimal", ",", "-q")
    assert (tmp_path / "run" / "train.npz").exists()
    fails(2, "backtest", path, "--out", tmp_path / "bt", "--detector", "restart", "--sep", ";",
          fragment="try --decimal ','")


def test_parquet_reads_the_same_table(frame, reference, tmp_path):
    pytest.importorskip("pyarrow", reason="the [parquet] extra (pyarrow) is not installed")
    zoned = frame.assign(time=pd.to_datetime(frame["time"], format="%m/%d/%y %H:%M").dt.tz_localize("Europe/Helsinki"))
    path = tmp_path / "export.parquet"
    zoned.to_parquet(path)
    table = read_table(path)
    assert table.features == reference.features
    np.testing.assert_allclose(table.values, reference.values)
    assert table.utc_offset is not None and set(np.unique(table.utc_offset)) <= {7200, 10800}
    naive = tmp_path / "naive.parquet"
    frame.assign(time=pd.to_datetime(frame["time"], format="%m/%d/%y %H:%M")).to_parquet(naive)
    np.testing.assert_array_equal(read_table(naive).time, reference.time)
    chunks = list(read_csv(naive, chunk_rows=100))
    assert sum(len(c) for c in chunks) == len(frame) and isinstance(chunks[0]["time"].iloc[0], str)
    ok("prepare", path, "--out", tmp_path / "run", "-q")


def test_parquet_without_pyarrow_is_exit_2_naming_the_extra(frame, tmp_path, monkeypatch):
    path = tmp_path / "export.parquet"
    path.write_bytes(b"PAR1 not really")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    fails(2, "prepare", path, "--out", tmp_path / "run", fragment="pip install 'lstm-rare-event[parquet]'")


def test_parquet_chunks_read_as_score_reads_csv_chunks(frame, tmp_path):
    pytest.importorskip("pyarrow", reason="the [parquet] extra (pyarrow) is not installed")
    from lstm_rare_event.preprocess.csv import read_chunks

    path = tmp_path / "export.parquet"
    frame.assign(time=pd.to_datetime(frame["time"], format="%m/%d/%y %H:%M")).to_parquet(path)
    assert sum(len(c) for c in read_chunks(path, 64)) == len(frame)

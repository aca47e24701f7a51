"""Reading sheet-break CSV input: every problem is one UserError line naming the file and the
row or column; times with changing UTC offsets parse."""

import numpy as np
import pandas as pd
import pytest

from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.csv import MAX_ABS_VALUE, check_table, read_csv, read_table, select_features


def write(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def table_text(rows=4, extra=""):
    """``time,y,x1,x2`` in the real format, with ``extra`` appended to every line."""
    lines = [f"time,y,x1,x2{extra and ',' + extra.split('=')[0]}"]
    for i in range(rows):
        lines.append(f"5/1/99 0:{2 * i:02d},0,{i}.5,{i * 2}" + (extra and "," + extra.split("=")[1]))
    return "\n".join(lines) + "\n"


def one_line(exc) -> str:
    message = str(exc.value)
    assert "\n" not in message and "np." not in message
    return message


# 1. select_features: the label or time as a feature, a feature twice, a duplicated header


@pytest.mark.parametrize("name", ["y", "time"])
def test_label_or_time_column_as_a_feature_is_refused(tmp_path, name):
    path = write(tmp_path, table_text())
    with pytest.raises(UserError) as exc:
        read_table(path, features=["x1", name])
    message = one_line(exc)
    assert str(path) in message and f"column '{name}'" in message and "cannot be a feature" in message


def test_feature_named_twice_is_refused(tmp_path):
    path = write(tmp_path, table_text())
    with pytest.raises(UserError) as exc:
        select_features(["time", "y", "x1", "x2"], path, ["x1", "x1"])
    message = one_line(exc)
    assert str(path) in message and "column 'x1' is named twice" in message


def test_duplicated_header_is_refused_naming_the_column(tmp_path):
    text = "time,y,x1,x5,x2,x5\n5/1/99 0:00,0,1,2,3,4\n5/1/99 0:02,0,1,2,3,4\n"
    path = write(tmp_path, text)
    with pytest.raises(UserError) as exc:
        read_table(path)
    message = one_line(exc)
    assert str(path) in message and "column 'x5' appears twice" in message and "columns 4 and 6" in message
    with pytest.raises(UserError, match="'x5' appears twice"):  # chunked reading (score) too
        read_csv(path, chunk_rows=1)


def test_a_real_column_named_like_a_pandas_rename_is_fine(tmp_path):
    path = write(tmp_path, "time,y,x5.1,x2\n5/1/99 0:00,0,1,2\n5/1/99 0:02,0,1,2\n")
    assert read_table(path).features == ["x5.1", "x2"]


# 2. a text column: suggest leaving it out


def test_text_column_suggests_drop_or_features(tmp_path):
    path = write(tmp_path, table_text(extra="note=checked by Anna"))
    with pytest.raises(UserError) as exc:
        read_table(path)
    message = one_line(exc)
    assert str(path) in message and "row 1, column 'note'" in message
    assert "--drop x28,x61,note" in message and "--features" in message
    assert read_table(path, drop=["note"]).features == ["x1", "x2"]


def test_one_bad_value_in_a_numeric_column_gets_no_drop_hint(tmp_path):
    path = write(tmp_path, table_text().replace("2.5,4", "abc,4"))
    with pytest.raises(UserError) as exc:
        read_table(path)
    message = one_line(exc)
    assert "row 3, column 'x1': 'abc' is not a finite number" in message and "--drop" not in message


# 3. finite values too large for later arithmetic


@pytest.mark.parametrize("value", ["1e300", "-2e151"])
def test_huge_value_is_refused_naming_row_and_column(tmp_path, value):
    path = write(tmp_path, table_text().replace("2.5,4", f"2.5,{value}"))
    with pytest.raises(UserError) as exc:
        read_table(path)
    message = one_line(exc)
    shown = f"{float(value):g}"
    assert f"{path}: row 3, column 'x2': value {shown} is too large (|x| > {MAX_ABS_VALUE:g}" in message
    assert read_table(write(tmp_path, table_text().replace("2.5,4", "2.5,1e150"), "ok.csv")).values[2, 1] == 1e150


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_inf_and_nan_are_still_refused_without_numpy_reprs(tmp_path, value):
    frame = pd.DataFrame({"time": ["5/1/99 0:00", "5/1/99 0:02"], "y": [0, 0], "x1": [1.0, float(value)]})
    with pytest.raises(UserError) as exc:
        check_table(frame, "mem.csv", ["x1"])
    message = one_line(exc)
    assert f"mem.csv: row 2, column 'x1': {value} is not a finite number" in message


@pytest.mark.parametrize("features, named", [(["x1", "x2", "x3"], "row 2, column 'x2': 'a' is not a finite"),
                                             (["x3", "x2"], "row 2, column 'x3': inf is not a finite number")])
def test_of_several_bad_columns_the_first_in_feature_order_is_named(features, named):
    # x2 text (parsed from its text), x3 numbers (converted with the other number columns)
    frame = pd.DataFrame({"time": ["5/1/99 0:00", "5/1/99 0:02"], "x1": [1.0, 2.0], "x2": ["1", "a"],
                          "x3": [1e200, np.inf]})
    with pytest.raises(UserError) as exc:
        check_table(frame, "mem.csv", features, labels="ignore")
    assert named in one_line(exc)


# 4. ISO 8601 times whose UTC offset changes


def iso_text(times):
    return "time,y,x1\n" + "".join(f"{t},0,{i}\n" for i, t in enumerate(times))


@pytest.mark.parametrize("written, utc, offsets", [
    # daylight saving starts: the offset changes mid-file
    (["2024-03-31T01:56:00+01:00", "2024-03-31T01:58:00+01:00", "2024-03-31T03:00:00+02:00",
      "2024-03-31T03:02:00+02:00"],
     ["2024-03-31T00:56:00", "2024-03-31T00:58:00", "2024-03-31T01:00:00", "2024-03-31T01:02:00"],
     [3600, 3600, 7200, 7200]),
    # Z mixed with +00:00, a negative offset and one without a colon
    (["2024-01-01T00:00:00Z", "2024-01-01T00:02:00+00:00", "2023-12-31T19:04:00-05:00",
      "2024-01-01T05:36:00+0530"],
     ["2024-01-01T00:00:00", "2024-01-01T00:02:00", "2024-01-01T00:04:00", "2024-01-01T00:06:00"],
     [0, 0, -18000, 19800]),
])
def test_changing_utc_offsets_parse_to_utc_with_the_offsets_kept(tmp_path, written, utc, offsets):
    table = read_table(write(tmp_path, iso_text(written)))
    assert table.time.astype(str).tolist() == utc
    assert table.utc_offset.tolist() == offsets


def test_one_offset_and_naive_times(tmp_path):
    one = read_table(write(tmp_path, iso_text(["2024-01-01T00:00+01:00", "2024-01-01T00:02+01:00"]), "a.csv"))
    assert one.utc_offset.tolist() == [3600, 3600] and str(one.time[0]) == "2023-12-31T23:00:00"
    assert read_table(write(tmp_path, iso_text(["2024-01-01T00:00", "2024-01-01T00:02"]), "b.csv")).utc_offset is None
    assert read_table(write(tmp_path, table_text(), "c.csv")).utc_offset is None


@pytest.mark.parametrize("times, row, what", [
    (["2024-01-01T00:00+01:00", "2024-01-01T00:02+02:00", "2024-01-01T00:04"], 3, "has no UTC offset"),
    (["2024-01-01T00:00", "2024-01-01T00:02", "2024-01-01T00:04Z"], 3, "has a UTC offset"),
])
def test_naive_times_mixed_with_offsets_are_refused_at_the_first_differing_row(tmp_path, times, row, what):
    path = write(tmp_path, iso_text(times))
    with pytest.raises(UserError) as exc:
        read_table(path)
    message = one_line(exc)
    assert f"{path}: row {row}, column 'time'" in message and what in message


def test_offsets_or_none_must_agree_across_chunks():
    chunk = pd.DataFrame({"time": ["2024-01-01T00:04", "2024-01-01T00:06"], "x1": [1.0, 2.0]})
    with pytest.raises(UserError, match=r"s.csv: row 3, column 'time'.*has no UTC offset"):
        check_table(chunk, "s.csv", ["x1"], labels="ignore", first_row=3, earlier_offsets=True)


# 5. messages stay short


def test_ten_thousand_columns_give_a_short_message(tmp_path):
    names = [f"sensor_with_a_long_name_{i}" for i in range(10_000)]
    path = write(tmp_path, ",".join(names) + "\n" + ",".join("1" * len(names)) + "\n")
    with pytest.raises(UserError) as exc:
        read_table(path)
    message = one_line(exc)
    assert str(path) in message and "no 'time' column" in message and "(9995 more)" in message
    assert len(message) - len(str(path)) < 300

    with pytest.raises(UserError) as exc:
        select_features(["time", "y"], path, names)
    message = one_line(exc)
    assert "missing column(s)" in message and len(message) - len(str(path)) < 300


def test_bad_label_shows_a_plain_number(tmp_path):
    path = write(tmp_path, table_text().replace("5/1/99 0:04,0", "5/1/99 0:04,2"))
    with pytest.raises(UserError) as exc:
        read_table(path)
    assert f"{path}: row 3, column 'y': label 2; expected 0 or 1" in one_line(exc)


def test_times_out_of_order_show_the_text_as_written(tmp_path):
    path = write(tmp_path, iso_text(["2024-01-01T00:00+01:00", "2024-01-01T00:02+01:00", "2024-01-01T00:01+01:00"]))
    with pytest.raises(UserError) as exc:
        read_table(path)
    message = one_line(exc)
    assert f"{path}: row 3, column 'time': '2024-01-01T00:01+01:00' does not come after '2024-01-01T00:02+01:00'" \
        in message


def test_real_format_and_naive_iso_parse_100000_rows_without_offsets(tmp_path):
    """The common formats take the vectorized path (speed is measured in `make bench`)."""
    n = 100_000
    times = pd.Timestamp("1999-05-01") + pd.to_timedelta(np.arange(n) * 2, unit="min")
    for text in ([f"{t.month}/{t.day}/{t:%y} {t.hour}:{t:%M}" for t in times], times.strftime("%Y-%m-%dT%H:%M:%S")):
        frame = pd.DataFrame({"time": pd.Series(text, dtype=str), "x1": np.zeros(n)})
        table = check_table(frame, "big.csv", ["x1"], labels="ignore")
        assert table.utc_offset is None and table.time[-1] == times[-1].to_datetime64().astype("datetime64[s]")


# 6. demo data: gzip, seeds, chunked writing


def test_write_csv_to_gz_writes_gzip_that_reads_back(tmp_path):
    import gzip

    from lstm_rare_event import synthetic

    frame = synthetic.make_sheet_breaks(rows=60, seed=3)
    path = tmp_path / "demo.csv.gz"
    synthetic.write_csv(frame, path)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    plain = tmp_path / "demo.csv"
    synthetic.write_csv(frame, plain)
    assert gzip.decompress(path.read_bytes()) == plain.read_bytes()
    assert read_table(path).values.shape == (60, 59)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.csv", "demo.csv.gz"]  # no temporary left


def test_negative_seed_is_a_user_error():
    from lstm_rare_event import synthetic

    with pytest.raises(UserError, match="seed -1: must be 0 or more"):
        synthetic.make_sheet_breaks(rows=60, seed=-1)


def test_chunked_write_gives_the_bytes_of_one_piece(tmp_path):
    """write_csv formats chunk by chunk; the file must be what formatting all rows at once gives."""
    from lstm_rare_event import synthetic

    frame = synthetic.make_sheet_breaks(rows=103, seed=11)
    places = dict(zip(synthetic.NUMERIC, synthetic.make_plant().decimals))
    row = ",".join(f"%.{places[name]}f" if name in places else "%s" for name in frame.columns) + "\n"
    columns = [frame[name].tolist() for name in frame.columns]
    expected = ",".join(frame.columns) + "\n" + "".join(row % values for values in zip(*columns))
    for chunk_rows in (10, 103, 1000):
        path = tmp_path / f"c{chunk_rows}.csv"
        synthetic.write_csv(frame, path, chunk_rows=chunk_rows)
        assert path.read_bytes() == expected.encode("utf-8")

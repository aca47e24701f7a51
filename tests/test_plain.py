"""Small inputs read without pandas (:mod:`lstm_rare_event.preprocess.plain`) give what pandas'
reading gives: the same scores.csv, state and alert lines of a run of ``score --state`` calls,
the same one-line errors; and a cell that is not plain is read by pandas instead."""

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import invoke

from lstm_rare_event.preprocess import plain
from lstm_rare_event.preprocess.csv import Buffer, Columns, parse_times_with_offsets
from lstm_rare_event.scoring import engine
from lstm_rare_event.synthetic import make_sheet_breaks

ROWS = 236
CALLS = ((0, 200), (200, 201), (201, 202), (202, ROWS))  # a first call, two single rows, then a few
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d ", re.MULTILINE)  # a log line's wall time


@pytest.fixture(scope="module")
def frame():
    return make_sheet_breaks(ROWS, seed=2)


def _iso(frame, sep="T", offsets=None):
    """The times as ISO 8601 text; ``offsets``: (row from which, suffix) pairs, in row order."""
    out = []
    for i, written in enumerate(frame["time"]):
        t = dt.datetime.strptime(written, "%m/%d/%y %H:%M").strftime(f"%Y-%m-%d{sep}%H:%M:%S")
        suffix = ""
        for start, given in offsets or ():
            suffix = given if i >= start else suffix
        out.append(t + suffix)
    return out


def lines(frame, kind):
    """The rows of ``frame`` written in the way ``kind`` names, header first, and score's options."""
    header = list(frame.columns)
    cells = [[str(v) for v in row] for row in frame.astype(object).itertuples(index=False)]
    options, sep, end = [], ",", "\n"
    if kind == "iso offsets":
        for row, t in zip(cells, _iso(frame, "T", [(0, "+02:00"), (120, "+01:00"), (201, "Z")])):
            row[0] = t
    elif kind == "iso space":
        for row, t in zip(cells, _iso(frame, " ")):
            row[0] = t[:-3]  # no seconds
    elif kind == "semicolon comma":  # and labels written as floats
        sep, options = ";", ["--sep", ";", "--decimal", ","]
        cells = [[c.replace(".", ",") for c in row[:1]] + [f"{row[1]},0"] + [c.replace(".", ",") for c in row[2:]]
                 for row in cells]
    elif kind == "quoted crlf":
        end = "\r\n"
        for i, row in enumerate(cells):
            row[3] = f'"{row[3]}"'
            row[5] = f'  {row[5]}'
            row[1] = f' "{row[1]}"'
        header = ["\ufefftime", *(f'"{name}"' for name in header[1:])]
    elif kind == "empty cells":
        options = ["--missing", "hold"]
        for i in (3, 150, 200, 203, 230):
            cells[i][7] = ""
            cells[i][20] = "   "
    elif kind == "not plain":  # each read by pandas: a power of ten past 10**22, 16 digits, a negative zero, a plus sign
        cells[0][4], cells[200][5], cells[201][6], cells[203][8] = "1.5e-30", "0.1234567890123456", "-0", "+1.5"
    elif kind == "out of order":
        cells[210][0] = cells[205][0]
    elif kind == "missing error":
        cells[201][9] = ""
    rows = [sep.join(header) + end] + [sep.join(row) + end for row in cells]
    return rows, options


def calls(run, rows, options, tmp_path, name):
    """The outputs of CALLS's `score --state` calls on pieces of ``rows``, and what they printed."""
    folder = tmp_path / name
    folder.mkdir()
    out, state, printed = folder / "scores.csv", folder / "state.json", []
    for k, (start, stop) in enumerate(CALLS):
        piece = folder / f"{k}.csv"
        piece.write_bytes("".join([rows[0], *rows[1 + start:1 + stop]]).encode("utf-8"))
        result = invoke("score", run, piece, "--state", state, "--out", out, *options)
        printed.append((result.exit_code, STAMP.sub("", result.output.replace(str(folder), "FOLDER"))))
        if result.exit_code not in (0, 3):
            break
    return out.read_bytes(), state.read_bytes(), printed


def _state(text: bytes) -> dict:
    """A state without its output's folder and inode, which differ between the two outputs, and
    without the wall-clock second at which the newest row was seen (the stale-input clock)."""
    data = json.loads(text)
    data["output"]["path"] = Path(data["output"].pop("path")).name
    data["output"].pop("inode")
    newest = data["alerts"].get("newest_row")
    if newest:
        assert newest.pop("seen").startswith("20")  # an ISO time of the wall clock
    return data


KINDS = ["real", "iso offsets", "iso space", "semicolon comma", "quoted crlf", "empty cells", "not plain",
         "out of order", "missing error"]
FALLS_BACK = {"not plain": 4}  # calls read by pandas


@pytest.mark.parametrize("kind", KINDS)
def test_plain_reading_writes_the_bytes_of_pandas_reading(runs, frame, tmp_path, monkeypatch, kind):
    rows, options = lines(frame, kind)
    read_by_pandas = []
    frame_of = plain.TextTable.frame
    monkeypatch.setattr(plain.TextTable, "frame", lambda self: read_by_pandas.append(self) or frame_of(self))
    fast = calls(runs["mahalanobis"], rows, options, tmp_path, "plain")
    assert len(read_by_pandas) == FALLS_BACK.get(kind, 0)
    monkeypatch.setattr(engine, "read_plain", lambda *args, **kwargs: None)
    slow = calls(runs["mahalanobis"], rows, options, tmp_path, "pandas")
    assert fast[0] == slow[0]
    assert _state(fast[1]) == _state(slow[1])
    assert fast[2] == slow[2]
    if kind in ("out of order", "missing error"):
        assert fast[2][-1][0] == 2 and "row " in fast[2][-1][1]
    else:
        assert [code for code, _ in fast[2]] == [0] * len(CALLS)


@pytest.mark.parametrize("text, why", [
    (b"time,x1\n5/1/99 0:00,1\n\n5/1/99 0:02,2\n", "a blank line"),
    (b"time,x1\n5/1/99 0:00,1,2\n", "a line with another number of fields"),
    (b'time,x1\n5/1/99 0:00,"1"2\n', "a quote inside a field"),
    (b"time,x1,x1\n5/1/99 0:00,1,2\n", "a column named twice"),
    (b"time,,x1\n5/1/99 0:00,1,2\n", "a column without a name"),
    (b"time,x1\r5/1/99 0:00,1\r", "lines ended by a lone CR"),
    (b"\x1f\x8b\x08", "gzip"),
])
def test_odd_lines_are_left_to_pandas(text, why):
    assert plain.read_plain(Buffer(text), 100) is None, why


@pytest.mark.parametrize("time", ["5/1/99 0:00:00", "1999-05-01", "1999-02-30T00:00:00", "1999-05-01T24:00:00",
                                  "1999-05-01T00:00:00.5", "1999-05-01T00:00:00+0100", "926000000",
                                  "1999-05-01T00:00:00+15:00", "1600-05-01T00:00:00"])
def test_other_times_are_left_to_pandas(time):
    table = plain.read_plain(Buffer(f"time,x1\n{time},1\n".encode()), 100)
    assert table.check(["x1"]) is None


def test_a_time_format_is_left_to_pandas():
    assert plain.read_plain(Buffer(b"time,x1\n5/1/99 0:00,1\n"), 100, columns=Columns(time_format="%m/%d/%y %H:%M")) \
        is None


@pytest.mark.parametrize("times", [
    ["1999-05-01T00:00Z", "1999-05-01 00:02Z", "1999-05-01 00:04:00+00:00"],
    ["1999-05-01T00:00+01:00", "1999-05-01 00:02+05:45", "1999-05-01T00:04:00-00:30", "1999-05-01T23:59:59-14:00"],
    ["1969-12-31T23:59:59", "1970-01-01T00:00:00", "2000-02-29T12:00", "2200-12-31T23:59:59"],
    ["12/31/68 23:59", "1/1/69 0:00", "02/03/04 05:06", "5/1/99 0:00"],
])
def test_plain_times_are_pandas_times(times):
    plain_time, plain_offsets = plain._times(times)
    time, offsets = parse_times_with_offsets(pd.Series(times, dtype=str), "mem.csv")
    assert plain_time.tolist() == time.tolist()
    assert (plain_offsets is None and offsets is None) or plain_offsets.tolist() == offsets.tolist()

"""INPUT as cron has it: several day files or a pattern, read in time order; --last across them;
standard input."""

import json

import numpy as np
import pytest

from conftest import invoke, ok, write_days
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.inputs import MissingInput, expand
from lstm_rare_event.synthetic import make_sheet_breaks, write_csv

PREPARE = ("--detrend", "12", "-q", "--json")


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Five days of the plant, one file each, and the same rows in one file."""
    base = tmp_path_factory.mktemp("days")
    frame = make_sheet_breaks(3600, seed=4)
    whole = base / "whole.csv"
    write_csv(frame, whole)
    return write_days(frame, base / "incoming"), whole


def prepared(*args):
    info = json.loads(ok("prepare", *args, *PREPARE).stdout)
    return {k: v for k, v in info.items() if k != "input"}, info["input"]


def same_files(a, b):
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in ("rows.npy", "train.npz", "valid.npz"))


def test_day_files_by_pattern_prepare_as_the_whole_file_does(days, tmp_path):
    files, whole = days
    one, _ = prepared(whole, "--out", tmp_path / "one")
    many, given = prepared(str(files[0].parent / "*.csv"), "--out", tmp_path / "many")
    assert many == one and same_files(tmp_path / "one", tmp_path / "many")
    assert given["files"] == [str(f) for f in files] and given["rows"] == 3600


def test_files_are_read_in_the_order_of_their_times_not_their_names(days, tmp_path):
    files, _ = days
    renamed = []
    for i, path in enumerate(files):  # day-9 sorts after day-10 by name
        target = tmp_path / f"day-{9 + i}.csv"
        target.write_bytes(path.read_bytes())
        renamed.append(target)
    assert [p.name for p in expand([str(tmp_path / "day-*.csv")]).sources] == [p.name for p in renamed]


def test_last_reads_only_the_files_that_hold_the_last_days(days, tmp_path):
    files, whole = days
    one, _ = prepared(whole, "--out", tmp_path / "one", "--last", "2d", "--fractions", "0.75,0.25,0")
    folder = tmp_path / "incoming"
    folder.mkdir()
    for path in files:
        (folder / path.name).write_bytes(path.read_bytes())
    # Spoil the first day after its first row: read, it would be exit 2.
    first = folder / files[0].name
    lines = first.read_text().splitlines(keepends=True)
    first.write_text("".join(lines[:2]) + lines[2].replace(",", ",oops,", 1) + "".join(lines[3:]))
    assert invoke("prepare", first, "--out", tmp_path / "bad", "-q").exit_code == 2
    many, given = prepared(str(folder / "*.csv"), "--out", tmp_path / "many", "--last", "2d",
                           "--fractions", "0.75,0.25,0")
    assert many == one and same_files(tmp_path / "one", tmp_path / "many")
    assert str(first) not in given["files"]


def test_overlapping_files_are_exit_2_naming_the_file_and_row(days, tmp_path):
    files, _ = days
    lines = files[1].read_text().splitlines(keepends=True)
    overlap = tmp_path / "overlap.csv"  # the second day again, from its 10th row: inside the second day
    overlap.write_text(lines[0] + "".join(lines[10:]))
    result = invoke("prepare", files[1], overlap, "--out", tmp_path / "run", "-q")
    assert result.exit_code == 2
    assert f"{overlap}: row 1, column 'time'" in result.output and "strictly increasing" in result.output


def test_standard_input_prepares_as_the_file_does(days, tmp_path):
    from click.testing import CliRunner

    from lstm_rare_event.cli import cli

    _, whole = days
    one, _ = prepared(whole, "--out", tmp_path / "one")
    result = CliRunner().invoke(cli, ["prepare", "-", "--out", str(tmp_path / "piped"), *PREPARE],
                                input=whole.read_bytes())
    assert result.exit_code == 0, result.output
    piped = json.loads(result.stdout)
    assert {k: v for k, v in piped.items() if k != "input"} == one and piped["input"]["path"] == "stdin"
    assert same_files(tmp_path / "one", tmp_path / "piped")


@pytest.mark.parametrize("arguments, fragment, missing", [
    (["{tmp}/nothing-*.csv"], "nothing-*.csv: no file matches", True),
    (["{tmp}/absent.csv"], "absent.csv: file not found", True),
    (["{tmp}"], "a folder; give its files", False),
    (["{file}", "{file}"], "given twice", False),
    (["-", "{file}"], "standard input", False),
])
def test_bad_inputs_are_one_line(days, tmp_path, arguments, fragment, missing):
    files, _ = days
    arguments = [a.format(tmp=tmp_path, file=files[0]) for a in arguments]
    with pytest.raises(UserError) as caught:
        expand(arguments)
    assert fragment in str(caught.value) and isinstance(caught.value, MissingInput) == missing
    result = invoke("prepare", *arguments, "--out", tmp_path / "run", "-q")
    assert result.exit_code == 2 and fragment in result.output and not (tmp_path / "run").exists()


def test_after_skips_the_files_a_stateful_score_has_seen(days):
    files, _ = days
    inputs = expand([str(files[0].parent / "*.csv")])
    third_start = inputs.first_times[2]
    assert inputs.after(None) == inputs
    assert inputs.after(third_start).sources == tuple(files[2:])  # the second day ends before it
    assert inputs.after(third_start - np.timedelta64(120, "s")).sources == tuple(files[1:])
    header_only = files[0].parent.parent / "header-only.csv"
    header_only.write_text(files[0].read_text().splitlines()[0] + "\n")
    later = expand([str(files[0].parent / "*.csv"), str(header_only)])
    assert later.sources[-1] == header_only and later.first_times[-1] is None


def test_the_readme_and_the_crontab_have_the_same_cron_lines():
    from conftest import ROOT

    def cron_lines(text):
        return [line for line in text.splitlines() if line[:1].isdigit() or line.startswith("*/")]

    crontab = cron_lines((ROOT / "examples" / "crontab").read_text())
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("```cron"):]
    assert crontab and cron_lines(block[:block.index("```", 3)]) == crontab
    nightly = (ROOT / "examples" / "Makefile").read_text()
    assert "HISTORY='incoming/*.csv'" in crontab[-1] and "--last 4d" in nightly  # 4 days over the day files

"""report: one self-contained HTML file, every figure embedded and loading in a real browser;
the scores figure from score's CSV."""

import base64
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from conftest import copy_run, fails, ok

from lstm_rare_event.alarms.rule import AlarmRule
from lstm_rare_event.errors import UserError
from lstm_rare_event.run import Run
from lstm_rare_event.scoring import figure
from lstm_rare_event.steps import report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
IMG = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


@pytest.fixture(scope="module")
def evaluated(runs, tmp_path_factory, new_csv):
    """An evaluated lstm run and its scores of another day."""
    base = tmp_path_factory.mktemp("report")
    run = copy_run(runs["lstm"], base)
    ok("evaluate", run, "-q")
    scores = base / "scores.csv"
    ok("score", run, new_csv, "--out", scores, "-q")
    return run, scores


def figures_of(text: str) -> list[bytes]:
    return [base64.b64decode(data) for data in IMG.findall(text)]


def test_the_report_is_one_self_contained_file(evaluated, tmp_path):
    run, scores = evaluated
    out = tmp_path / "out" / "report.html"
    result = ok("report", run, "--out", out, "--scores", scores, "-q")
    assert "figures" in result.stdout
    text = out.read_text()
    for heading in ("Latest alarms", "Data", "Options", "Detector", "Threshold", "Evaluation"):
        assert f">{heading}" in text
    assert "Verdict." in text and "than chance" in text
    pngs = figures_of(text)
    # loss, threshold, timeline, ROC/PR, histogram, scored period
    assert len(pngs) == 6 and all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert text.count("<img") == 6
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from the network
    assert list(out.parent.iterdir()) == [out]  # written atomically: no partial file left


def test_a_run_without_evaluation_has_the_sections_it_can(runs, tmp_path):
    out = tmp_path / "r.html"
    result = report.build_report(runs["mahalanobis"], out)
    assert result["sections"] == ["data", "options", "detector", "threshold"] and result["figures"] == 1


def test_report_refuses_an_output_inside_the_run(runs, tmp_path):
    run = copy_run(runs["restart"], tmp_path)
    fails(2, "report", run, "--out", run / "report.html", fragment="inside the run directory")
    assert not (run / "report.html").exists()


def test_report_refuses_a_file_that_is_not_a_scores_csv(evaluated, tmp_path):
    run, _ = evaluated
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    fails(2, "report", run, "--out", tmp_path / "r.html", "--scores", bad, fragment="missing column(s) time")
    assert not (tmp_path / "r.html").exists()


def _browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def test_every_figure_loads_in_headless_chromium(evaluated, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip(f"no Chromium binary found ({', '.join(BROWSERS)} not on PATH); `.ci/run` installs it")
    run, scores = evaluated
    out = tmp_path / "report.html"
    ok("report", run, "--out", out, "--scores", scores, "-q")
    # A probe appended to a copy: after load, how many images decoded (naturalWidth > 0).
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("</body>", (
        "<script>window.addEventListener('load', function () {"
        " var imgs = Array.from(document.images);"
        " var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;"
        " document.body.setAttribute('data-images', ok + '/' + imgs.length); });</script></body>")))
    done = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
                           probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'data-images="(\d+)/(\d+)"', done.stdout)
    assert found, f"no probe result from {browser}: {done.stderr[-2000:]}"
    assert found.group(1) == found.group(2) == "6"


# -- the scores figure --------------------------------------------------------------------

def _scores_csv(path, times, episodes=(1, 1, 2)):
    """Flagged at windows 3, 4 and 20, numbered ``episodes`` as score numbers them."""
    n = len(times)
    score = np.full(n, 0.2)
    score[[3, 4, 20]] = [2.0, 3.0, 1.5]
    episode = np.zeros(n, dtype=int)
    episode[[3, 4, 20]] = episodes
    frame = pd.DataFrame({"time": times, "score": score, "flag": (score > 1).astype(int), "episode": episode,
                          "sensor_1": ["x5"] * n, "share_1": [0.6] * n, "sensor_2": ["x7"] * n, "share_2": [0.3] * n,
                          "sensor_3": ["x9"] * n, "share_3": np.r_[[0.1] * 20, [0.7] * (n - 20)]})
    frame.to_csv(path, index=False)
    return path


def test_scored_episodes_and_their_top_sensors(tmp_path):
    times = [f"2024-03-01T{h:02d}:{m:02d}:00" for h, m in zip(*divmod(np.arange(30) * 2, 60))]
    scores = figure.read_scores(_scores_csv(tmp_path / "s.csv", times))
    rows = figure.scored_episodes(scores)
    # flagged at minutes 6, 8 (one episode) and 40 (another), as the episode column says
    assert [(str(r["start"]), r["windows"], r["peak"]) for r in rows] == [
        ("2024-03-01T00:06:00", 2, 3.0), ("2024-03-01T00:40:00", 1, 1.5)]
    # each episode named by the window that opened it (what the alert said), not by later windows
    assert rows[0]["sensors"] == ["x5", "x7", "x9"] and rows[1]["sensors"] == ["x5", "x7", "x9"]
    frame = pd.read_csv(tmp_path / "s.csv")
    frame.loc[4, ["sensor_1", "sensor_2", "sensor_3"]] = ["x11", "x2", "x12"]  # a later window of episode 1
    frame.loc[4, ["share_1", "share_2", "share_3"]] = [0.9, 0.9, 0.9]
    frame.to_csv(tmp_path / "s.csv", index=False)
    assert figure.scored_episodes(figure.read_scores(tmp_path / "s.csv"))[0]["sensors"] == \
        ["x5", "x7", "x9"]


def test_scored_episodes_are_the_csv_s_own_not_recounted(tmp_path):
    # A run thresholded with --merge 0 numbers every flagged window its own episode: the
    # report keeps those three, not two merged by a default gap.
    times = [f"2024-03-01T{h:02d}:{m:02d}:00" for h, m in zip(*divmod(np.arange(30) * 2, 60))]
    rows = figure.scored_episodes(figure.read_scores(_scores_csv(tmp_path / "s.csv", times, episodes=(1, 2, 3))))
    assert [(str(r["start"]), r["windows"]) for r in rows] == [
        ("2024-03-01T00:06:00", 1), ("2024-03-01T00:08:00", 1), ("2024-03-01T00:40:00", 1)]


def test_a_scores_csv_without_episodes_is_refused(tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame({"time": ["2024-03-01T00:00:00"], "score": [0.1], "flag": [0]}).to_csv(path, index=False)
    with pytest.raises(UserError, match="missing column.*episode"):
        figure.read_scores(path)


def test_plot_scores_in_the_data_time_zone(tmp_path):
    times = [f"2024-03-01T{h:02d}:{m:02d}:00+02:00" for h, m in zip(*divmod(np.arange(30) * 2, 60))]
    fig = figure.plot_scores(_scores_csv(tmp_path / "s.csv", times), tmp_path / "s.png", threshold=1.0)
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("x5\nx7\nx9") == 2
    # drawn as written (00:00 local), not converted to UTC (22:00 the day before)
    from matplotlib import dates as mdates

    left = mdates.num2date(ax.lines[0].get_xdata(orig=False)[0])
    assert (left.day, left.hour) == (1, 0)


def test_plot_scores_of_times_without_offset_shifted_to_the_data_zone(tmp_path):
    times = [f"2024-03-01T{h:02d}:{m:02d}:00" for h, m in zip(*divmod(np.arange(30) * 2, 60))]
    fig = figure.plot_scores(_scores_csv(tmp_path / "s.csv", times), tmp_path / "s.png", utc_offset_seconds=-5 * 3600)
    assert fig.axes[0].get_xlabel() == "window end time (UTC-05:00)"


# -- breaks on the scored period (score --keep-labels) --------------------------------------

def _labelled_scores_csv(path, breaks=(25, 50)):
    """60 two-minute lines flagged at minutes 30 and 32 (one episode); y 1 on the lines
    ``breaks`` (break lines: no score, as --keep-labels writes them)."""
    times = [f"2024-03-01T{h:02d}:{m:02d}:00" for h, m in zip(*divmod(np.arange(60) * 2, 60))]
    frame = pd.read_csv(_scores_csv(path, times, episodes=(1, 1, 2)))
    frame[["score", "flag", "episode"]] = [0.2, 0, 0]
    frame.loc[[15, 16], ["score", "flag", "episode"]] = [[2.0, 1, 1], [3.0, 1, 1]]
    frame.insert(4, "opened", (frame.index == 15).astype(int))
    frame.insert(5, "y", 0)
    for row in breaks:
        frame.loc[row, ["score", "flag", "episode", "y"]] = [np.nan, 0, 0, 1]
    frame.to_csv(path, index=False)
    return path


RULE = AlarmRule(1.0, merge_minutes=30, horizon_minutes=60)


def test_a_break_after_an_episode_is_warned_one_without_missed(tmp_path):
    # the episode starts at 00:30; the break at 00:50 is 20 min after it, the one at 01:40 70 min after (beyond the 60 min horizon)
    scores = figure.read_scores(_labelled_scores_csv(tmp_path / "s.csv"))
    judged = figure.judged_breaks(scores, RULE, interval_minutes=2)
    assert [(b["event_time"], b["warned"], b["lead_minutes"]) for b in judged["breaks"]] == [
        ("2024-03-01T00:50:00", True, 20.0), ("2024-03-01T01:40:00", False, None)]
    assert (judged["n_breaks"], judged["warned"], judged["missed"]) == (2, 1, 1)
    assert judged["alarm_on_share"] == 2 / 58  # two of the 58 windows flagged; the break lines are no windows
    assert judged["warned_share"] == 0.5 and 0 <= judged["warned_share_chance"] <= 1
    # a horizon shorter than the lead: no break is warned
    short = figure.judged_breaks(scores, AlarmRule(1.0, merge_minutes=30, horizon_minutes=10), interval_minutes=2)
    assert short["warned"] == 0


def test_a_csv_without_y_or_a_rule_without_horizon_judges_nothing(tmp_path):
    times = [f"2024-03-01T{h:02d}:{m:02d}:00" for h, m in zip(*divmod(np.arange(30) * 2, 60))]
    assert figure.judged_breaks(figure.read_scores(_scores_csv(tmp_path / "a.csv", times)), RULE, 2) is None
    labelled = figure.read_scores(_labelled_scores_csv(tmp_path / "b.csv"))
    assert figure.judged_breaks(labelled, AlarmRule(1.0), 2) is None


def test_the_scored_period_figure_draws_breaks_warned_or_missed(tmp_path):
    fig = figure.plot_scores(_labelled_scores_csv(tmp_path / "s.csv"), tmp_path / "s.png", rule=RULE,
                             interval_minutes=2)
    labels = fig.legends[0].get_texts()
    assert {"warned break (1 of 2)", "missed break (1 of 2)", "threshold 1"} <= {t.get_text() for t in labels}
    assert "20 min" in [t.get_text() for t in fig.axes[0].texts]  # the warned break's lead
    assert fig.axes[0].get_title().endswith("2 of 58 windows flagged")  # the break lines are no windows


# -- the day's report: breaks judged, episodes up close ------------------------------------

@pytest.fixture(scope="module")
def labelled_day(runs, new_csv, tmp_path_factory):
    """The Mahalanobis run's scores of another day, kept with its labels; the same without."""
    base = tmp_path_factory.mktemp("day")
    kept, plain = base / "kept.scores.csv", base / "plain.scores.csv"
    ok("score", runs["mahalanobis"], new_csv, "--out", kept, "--keep-labels", "-q")
    ok("score", runs["mahalanobis"], new_csv, "--out", plain, "-q")
    return kept, plain


def _warned_by_hand(scores_csv, horizon_minutes):
    """Each break of the CSV (a y 1 line) and whether an episode (an opened line) started in
    the horizon before it: the rule written out independently of the code under test."""
    frame = pd.read_csv(scores_csv, parse_dates=["time"])
    starts = frame.time[frame.opened == 1]
    horizon = pd.Timedelta(minutes=horizon_minutes)
    return {str(t.isoformat()): bool(((starts >= t - horizon) & (starts < t)).any()) for t in frame.time[frame.y == 1]}


def test_the_day_report_judges_its_breaks(runs, labelled_day, tmp_path):
    import json

    kept, _ = labelled_day
    result = ok("report", runs["mahalanobis"], "--scores", kept, "--out", tmp_path / "r.html", "--json", "-q")
    breaks = json.loads(result.stdout)["breaks"]
    horizon = breaks["horizon_minutes"]
    assert horizon == Run(runs["mahalanobis"]).threshold().horizon_minutes  # the run's rule, not restated
    by_hand = _warned_by_hand(kept, horizon)
    assert {b["event_time"]: b["warned"] for b in breaks["breaks"]} == by_hand and len(by_hand) == 2
    assert breaks["warned"] == sum(by_hand.values()) and breaks["missed"] == len(by_hand) - breaks["warned"]
    frame = pd.read_csv(kept)
    assert breaks["alarm_on_share"] == frame.flag.sum() / frame.score.notna().sum()
    text = (tmp_path / "r.html").read_text()
    assert f"Breaks in the scored period: 2; warned {breaks['warned']}" in text and "by chance" in text
    summary = ok("report", runs["mahalanobis"], "--scores", kept, "--out", tmp_path / "r.html", "-q").stdout
    assert f"breaks warned                 {breaks['warned']} of 2" in summary


def test_a_day_without_labels_says_how_to_keep_them(runs, labelled_day, tmp_path):
    import json

    _, plain = labelled_day
    result = ok("report", runs["mahalanobis"], "--scores", plain, "--out", tmp_path / "r.html", "--json", "-q")
    assert json.loads(result.stdout)["breaks"] is None
    assert "score the input with --keep-labels" in (tmp_path / "r.html").read_text()
    assert "breaks warned" not in result.stdout


def test_episode_figures_from_the_scored_input(runs, labelled_day, new_csv, tmp_path):
    import json

    kept, _ = labelled_day
    episodes = figure.scored_episodes(figure.read_scores(kept))
    assert 1 <= len(episodes) <= report.MAX_EPISODE_FIGURES
    plain = json.loads(ok("report", runs["mahalanobis"], "--scores", kept, "--out", tmp_path / "a.html",
                          "--json", "-q").stdout)
    drawn = json.loads(ok("report", runs["mahalanobis"], "--scores", kept, "--input", new_csv,
                          "--out", tmp_path / "b.html", "--json", "-q").stdout)
    assert drawn["figures"] == plain["figures"] + len(episodes)
    text = (tmp_path / "b.html").read_text()
    for episode in episodes:
        assert f'alt="alarm episode {episode["number"]}: its top sensors' in text
    assert len(figures_of(text)) == drawn["figures"]


def test_episode_figure_input_that_was_not_scored_or_without_scores(runs, labelled_day, tmp_path):
    kept, _ = labelled_day
    elsewhere = tmp_path / "elsewhere.csv"
    from lstm_rare_event.synthetic import make_sheet_breaks, write_csv

    frame = make_sheet_breaks(50, seed=2)
    frame["time"] = pd.to_datetime(frame.time, format="%m/%d/%y %H:%M").add(pd.Timedelta(days=30)) \
        .dt.strftime("%m/%d/%y %H:%M")
    write_csv(frame, elsewhere)
    ok("report", runs["mahalanobis"], "--scores", kept, "--input", elsewhere, "--out", tmp_path / "r.html", "-q")
    assert "has no row within 2 h of it" in (tmp_path / "r.html").read_text()
    fails(2, "report", runs["mahalanobis"], "--input", elsewhere, "--out", tmp_path / "s.html",
          fragment="--input draws the episodes of --scores")


def test_episode_figure_draws_sensors_score_threshold_and_break(tmp_path):
    scores = figure.read_scores(_labelled_scores_csv(tmp_path / "s.csv"))
    episode = figure.scored_episodes(scores)[0]
    times = np.arange(np.datetime64("2024-03-01T00:00:00"), np.datetime64("2024-03-01T02:00:00"),
                      np.timedelta64(2, "m"))
    values = np.column_stack([np.arange(times.size), -np.arange(times.size), np.zeros(times.size)]).astype(float)
    breaks = figure.figure_breaks(figure.judged_breaks(scores, RULE, 2))
    fig = figure.plot_episode(scores, episode, (times, values, ["x5", "x7", "x9"]), tmp_path / "e.png",
                              threshold=1.0, breaks=breaks)
    assert [ax.get_ylabel() for ax in fig.axes] == ["x5", "x7", "x9", "score"]
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_ydata(), -np.arange(times.size))  # the raw values
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    # both breaks lie within 2 h of the episode (00:30 to 00:32)
    assert {"threshold 1", "alarm episode", "warned break", "missed break"} <= labels
    far = dict(episode, start=np.datetime64("2024-03-02T00:30:00"), end=np.datetime64("2024-03-02T00:32:00"))
    assert figure.plot_episode(scores, far, (times, values, ["x5", "x7", "x9"]), tmp_path / "f.png") is None


def test_a_y_column_that_is_not_labels_is_refused(tmp_path):
    path = _labelled_scores_csv(tmp_path / "s.csv")
    frame = pd.read_csv(path)
    frame["y"] = frame["y"].astype(object)
    frame.loc[7, "y"] = "x"
    frame.to_csv(path, index=False)
    with pytest.raises(UserError, match=r"s.csv: row 8, column 'y': 'x' is not a label"):
        figure.read_scores(path)

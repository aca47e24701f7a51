"""The alert lifecycle's pieces: events, data conditions told once per start and clear, the sinks
(with real subprocesses), the Prometheus textfile, and the one definition of an episode's top sensors."""

import json
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from lstm_rare_event.alarms.sensors import episode_sensors, top_sensors
from lstm_rare_event.alerts import events
from lstm_rare_event.alerts.conditions import (
    CADENCE, DRIFT, MISSING_INPUT, STALE_INPUT, STUCK, Conditions, DataChecks, Finding,
)
from lstm_rare_event.alerts.sinks import COMMAND, LOG, Pending, SinkOptions, deliver, metrics_text, write_metrics
from lstm_rare_event.errors import UserError

PY = sys.executable


def opened_event(episode=3):
    return events.opened("runs/2026-12-04", episode, "2026-12-04T05:54:00", 6.1, 4.5,
                         [{"name": "x20", "share": 0.41, "z": 7.2}, {"name": "x8", "share": 0.2, "z": -3.1}])


# -- events ------------------------------------------------------------------------------------
def test_an_opened_event_names_score_threshold_and_sensors_with_shares_and_z():
    event = opened_event()
    assert event.prefix == "alert"
    assert event.message == ("alarm episode 3 opened at 2026-12-04T05:54:00: score 6.1 above the threshold 4.5; "
                             "top sensors x20 (41%, z +7.2), x8 (20%, z -3.1)")
    env = event.environment()
    assert env["LRE_EVENT"] == "opened" and env["LRE_EPISODE"] == "3" and env["LRE_SENSORS"] == "x20,x8"
    assert env["LRE_RUN"] == "runs/2026-12-04" and env["LRE_THRESHOLD"] == "4.5"
    assert events.Event.from_json(json.loads(json.dumps(event.as_json()))) == event


def test_a_resolved_event_has_end_duration_and_peak():
    event = events.resolved("run", 3, "2026-12-04T05:54:00", "2026-12-04T06:20:00", 8.2, "2026-12-04T06:02:00", 14, 30)
    assert event.prefix == "alert" and event.time == "2026-12-04T06:20:00"
    assert event.fields["duration_minutes"] == 26 and event.fields["peak"] == 8.2
    assert "resolved" in event.message and "26 minutes" in event.message
    assert event.id != opened_event().id  # the same episode's two events are told apart


# -- conditions --------------------------------------------------------------------------------
def test_a_condition_is_told_once_when_it_starts_and_once_when_it_clears():
    conditions = Conditions(clear_minutes=30)
    drift = {DRIFT: Finding("x3 beyond 10 SD", ("x3",))}
    told = []
    for minute, found in [(0, drift), (2, drift), (4, drift), (6, {}), (20, drift), (40, {}), (49, {}), (52, {})]:
        now = f"2026-12-04T00:{minute:02d}:00"
        told += [(minute, e.event) for e in conditions.update(found, {DRIFT, STUCK}, now, "run")]
    # seen again at 20 within the 30-minute hold: still the same condition; clear 30 min after it was last seen
    assert told == [(0, events.STARTED), (52, events.CLEARED)]
    assert conditions.active == {}


def test_a_condition_not_checked_does_not_clear():
    conditions = Conditions(clear_minutes=0)
    conditions.update({STUCK: Finding("x5 constant", ("x5",))}, {STUCK}, "2026-12-04T00:00:00", "run")
    assert conditions.update({}, set(), "2026-12-04T05:00:00", "run") == []  # a call without new rows
    assert STUCK in conditions.active


def test_a_missing_input_clears_as_soon_as_the_input_is_there():
    conditions = Conditions(clear_minutes=60)
    gone = {MISSING_INPUT: Finding("incoming/2026-12-05.csv: not found")}
    started = conditions.update(gone, {MISSING_INPUT}, "2026-12-05T00:00:05", "run")
    assert [e.event for e in started] == [events.STARTED] and started[0].prefix == "warning"
    assert conditions.update(gone, {MISSING_INPUT}, "2026-12-05T00:02:05", "run") == []
    cleared = conditions.update({}, {MISSING_INPUT}, "2026-12-05T00:04:05", "run")
    assert [e.fields["since"] for e in cleared] == ["2026-12-05T00:00:05"]


def test_conditions_survive_the_state_file():
    conditions = Conditions(clear_minutes=30)
    conditions.update({CADENCE: Finding("every 4 minutes"), STUCK: Finding("x5", ("x5",))}, {CADENCE, STUCK},
                      "2026-12-04T00:00:00", "run")
    again = Conditions.from_json(json.loads(json.dumps(conditions.as_json())), 30)
    assert again == conditions
    with pytest.raises(ValueError):
        Conditions.from_json([{"condition": "gremlins", "since": "x", "last_seen": "x", "message": ""}])
    with pytest.raises(ValueError):
        Conditions.from_json([{"condition": STUCK, "since": "yesterday", "last_seen": "x", "message": ""}])


def preprocessor(features=("a", "b", "c"), interval=120, lookback=3):
    return SimpleNamespace(features_=list(features), mean_=np.zeros(len(features)), scale_=np.array([1.0, 2.0, 2.0]),
                           interval_=np.timedelta64(interval, "s"), lookback=lookback, context_rows=2)


def test_data_checks_find_drift_stuck_sensors_and_another_cadence():
    pre = preprocessor()
    checks = DataChecks()
    time = np.arange(0, 8 * 240, 240).astype("datetime64[s]")  # every 4 minutes, the run has 2
    checks.add_steps(time)
    raw = np.column_stack([np.arange(8.0), np.full(8, 5.0), np.arange(8.0)])
    detrended = np.column_stack([np.zeros(8), np.zeros(8), np.r_[np.zeros(7), 30.0]])  # c: 15 SD
    checks.add_rows(pre, raw, 0, detrended, drift_sd=10)
    found = checks.findings(pre, drift_sd=10)
    assert set(found) == {DRIFT, STUCK, CADENCE} and checks.checked() == {DRIFT, STUCK, CADENCE}
    assert found[DRIFT].sensors == ("c",) and "15 SD" in found[DRIFT].message
    assert found[STUCK].sensors == ("b",)  # 'a' has scale 1.0: it did not vary in training, so not stuck
    assert "every 4 minutes" in found[CADENCE].message
    assert DataChecks().checked() == set() and DataChecks().findings(pre, 10) == {}


def test_drift_wavering_around_the_limit_starts_once_and_clears_once():
    """A sensor at 9 to 13 SD, call after call (each an hour of rows, beyond the clear period),
    then back near its training mean: one start, one clear; only a call beyond the limit starts."""
    pre, conditions = preprocessor(), Conditions(clear_minutes=60)
    told = []
    levels = [4, 11, 9, 13, 8, 12, 6, 10.5, 9.5, 3, 2, 1]  # c, in SD; the limit is 10
    varied = np.column_stack([np.arange(8.0)] * 3)
    for hour, level in enumerate(levels):
        checks = DataChecks()
        checks.add_rows(pre, varied, 0, np.column_stack([np.zeros(8), np.zeros(8), np.full(8, 2.0 * level)]), 10)
        found = checks.findings(pre, 10)
        told += [(level, e.event) for e in conditions.update(found, checks.checked(), f"2026-12-04T{hour:02d}:00:00",
                                                             "run", checks.holding())]
    assert told == [(11, events.STARTED), (3, events.CLEARED)]  # cleared an hour after 6 SD, the last above 5
    # Below the limit from the start: held only if in force, so nothing starts.
    quiet = Conditions(clear_minutes=60)
    checks = DataChecks()
    varied = np.column_stack([np.arange(8.0)] * 3)
    checks.add_rows(pre, varied, 0, np.column_stack([np.zeros(8), np.zeros(8), np.full(8, 18.0)]), 10)  # 9 SD
    assert quiet.update(checks.findings(pre, 10), checks.checked(), "2026-12-04T00:00:00", "run",
                        checks.holding()) == [] and quiet.active == {}


def test_a_stale_input_starts_once_on_the_wall_clock_and_clears_when_a_row_comes(tmp_path):
    from lstm_rare_event.alerts.lifecycle import Lifecycle
    from lstm_rare_event.alerts.watch import Watch

    def call(watch, last_row, now):
        watch.told = []
        watch.finish(False, DataChecks(), {}, last_row, interval_minutes=2.0, now=now)
        saved = json.loads(json.dumps(watch.as_json()))  # every call through the state file
        return [(e.event, e.fields["condition"]) for e in watch.told], Watch.start(saved, "run", 30)

    watch = Watch(Lifecycle("run", 30))
    told = []
    # Rows every 2 minutes up to 10:00, then none: calls every 2 minutes of wall clock (a
    # historian 5 hours behind UTC: the rows' times never compare with the wall clock).
    for minute in range(0, 80, 2):
        row = f"2026-12-05T{5 + min(minute, 20) // 60:02d}:{min(minute, 20) % 60:02d}:00"
        events_, watch = call(watch, row, f"2026-12-05T10:{minute:02d}:00" if minute < 60 else
                              f"2026-12-05T11:{minute - 60:02d}:00")
        told += [(minute, *e) for e in events_]
    assert told == [(50, events.STARTED, STALE_INPUT)]  # 30 minutes (15 rows of 2) after 10:20 saw the last row
    assert "no new row for 58 minutes (over 30: 15 rows" in watch.conditions.active[STALE_INPUT].message
    events_, watch = call(watch, "2026-12-05T05:22:00", "2026-12-05T11:20:00")
    assert events_ == [(events.CLEARED, STALE_INPUT)] and watch.conditions.active == {}
    # A state written before the stale input was told (no newest_row) reads as a first call.
    older = {k: v for k, v in watch.as_json().items() if k != "newest_row"}
    assert Watch.start(older, "run", 30).newest is None
    with pytest.raises(ValueError):
        Watch.start({**watch.as_json(), "newest_row": {"time": "soon", "seen": "2026-12-05T11:20:00"}}, "run", 30)


@pytest.mark.parametrize("stale_after, starts", [("6rows", 12), ("5min", 5), ("0", None)])
def test_stale_after_sets_how_long_the_newest_row_may_stay_the_newest(stale_after, starts):
    from lstm_rare_event.alerts.lifecycle import Lifecycle
    from lstm_rare_event.alerts.watch import Watch
    from lstm_rare_event.preprocess.spans import parse_gap

    span = parse_gap(stale_after, "--stale-after")
    watch, started = Watch(Lifecycle("run", 30), stale_after=span), None
    for minute in range(0, 40):  # one row, a call every minute of wall clock
        watch.told = []
        watch.finish(False, DataChecks(), {}, "2026-12-05T05:00:00", interval_minutes=2.0,
                     now=f"2026-12-05T10:{minute:02d}:00")
        if watch.told and started is None:
            started = minute
        watch = Watch.start(json.loads(json.dumps(watch.as_json())), "run", 30, stale_after=span)
    assert started == starts  # the default (15 rows of 2 minutes) would start at 30


# -- sinks, with real subprocesses -------------------------------------------------------------
def command(code: str) -> str:
    return f'"{PY}" -c "{code}"'


def test_the_command_gets_the_event_as_json_on_stdin_and_in_the_environment(tmp_path):
    out = tmp_path / "got.json"
    code = (f"import json,os,sys; e=json.load(sys.stdin); "
            f"json.dump([e, os.environ['LRE_EVENT'], os.environ['LRE_EPISODE']], open(r'{out}','w'))")
    done = deliver([opened_event()], [], SinkOptions(alert_cmd=command(code), timeout=30))
    assert done.errors == [] and done.pending == [] and done.delivered == 1
    got, kind, episode = json.loads(out.read_text())
    assert got == json.loads(json.dumps(opened_event().as_json())) and (kind, episode) == ("opened", "3")


def test_a_failing_command_is_reported_and_the_event_kept_for_the_next_call(tmp_path):
    log = tmp_path / "alerts.jsonl"
    options = SinkOptions(alert_cmd=command("import sys; sys.stderr.write('mail server down'); sys.exit(4)"),
                          alert_log=log, timeout=30)
    done = deliver([opened_event()], [], options)
    assert len(done.errors) == 1 and "exit 4: mail server down" in done.errors[0] and "kept to retry" in done.errors[0]
    (pending,) = done.pending
    assert pending.sinks == [COMMAND] and pending.attempts == 1  # the log took it: not written twice
    assert len(log.read_text().splitlines()) == 1
    again = Pending.from_json(json.loads(json.dumps(pending.as_json())))  # through the state file
    assert again.event == opened_event()


def test_a_command_that_succeeds_the_second_time_delivers_the_pending_event_first(tmp_path):
    marker, seen = tmp_path / "tried", tmp_path / "seen.txt"
    code = (f"import os,sys,json; e=json.load(sys.stdin); "
            f"first = not os.path.exists(r'{marker}'); open(r'{marker}','a').close(); "
            f"open(r'{seen}','a').write(e['id'] + chr(10)) if not first else None; sys.exit(1 if first else 0)")
    options = SinkOptions(alert_cmd=command(code), timeout=30)
    first = deliver([opened_event(3)], [], options)
    assert len(first.pending) == 1 and not seen.exists()
    second = deliver([opened_event(4)], first.pending, options)
    assert second.pending == [] and second.errors == []
    assert seen.read_text().splitlines() == [opened_event(3).id, opened_event(4).id]  # oldest first


def test_a_slow_command_is_killed_at_the_time_budget_and_scoring_goes_on(tmp_path):
    options = SinkOptions(alert_cmd=command("import time; time.sleep(60)"), timeout=1)
    start = time.monotonic()
    done = deliver([opened_event()], [], options)
    assert time.monotonic() - start < 30
    assert "killed" in done.errors[0] and len(done.pending) == 1


def test_events_left_when_the_budget_is_spent_are_not_tried_but_kept(tmp_path):
    log = tmp_path / "alerts.jsonl"
    ticks = iter([0.0, 0.0, 5.0, 5.0])  # the deadline, the first event's sink, then the budget is gone
    done = deliver([opened_event(3), opened_event(4)], [], SinkOptions(alert_log=log, timeout=1),
                   clock=lambda: next(ticks))
    assert [p.event.fields["episode"] for p in done.pending] == [4] and "not tried" in done.errors[0]
    assert [json.loads(line)["episode"] for line in log.read_text().splitlines()] == [3]


def test_an_unwritable_log_is_a_failure_kept_pending(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = deliver([opened_event()], [], SinkOptions(alert_log=blocker / "alerts.jsonl", timeout=5))
    assert done.pending[0].sinks == [LOG] and "cannot append" in done.errors[0]


def test_a_pending_event_for_a_sink_no_longer_given_is_dropped_with_a_line():
    pending = [Pending(opened_event(), [COMMAND])]
    done = deliver([], pending, SinkOptions(timeout=5))
    assert done.pending == [] and "dropped" in done.errors[0]


def test_sink_options_are_checked():
    with pytest.raises(UserError, match="--alert-cmd is empty"):
        SinkOptions(alert_cmd="  ")
    assert SinkOptions().sinks() == ()


def test_the_metrics_textfile_is_prometheus_text_written_whole(tmp_path):
    values = {"last_score": 1.5, "threshold": 4.5, "episode_open": 0, "episode_id": 2, "rows_scored_total": 720,
              "windows_scored_total": 716, "last_row_timestamp_seconds": 1764899400, "run_age_seconds": 3600.0,
              "alerts_pending": 0}
    text = metrics_text(values, {"state": 'score "a"'}, {DRIFT: True, STUCK: False})
    assert 'lstm_rare_event_threshold{state="score \\"a\\""} 4.5\n' in text
    assert 'lstm_rare_event_condition{state="score \\"a\\"",condition="drift"} 1\n' in text
    assert "# TYPE lstm_rare_event_rows_scored_total counter" in text
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(len(line.rsplit(" ", 1)) == 2 for line in samples)
    path = tmp_path / "lre.prom"
    assert write_metrics(path, values, {"state": "s"}, {}) is None
    assert path.read_text().endswith("\n") and [p.name for p in tmp_path.iterdir()] == ["lre.prom"]
    assert "cannot write" in write_metrics(tmp_path / "lre.prom" / "x.prom", values, {}, {})


# -- the one definition of an episode's top sensors --------------------------------------------
def test_an_episode_is_named_by_the_window_that_opened_it():
    contributions = np.array([[5.0, 1, 0, 0], [0, 0, 9, 8], [0, 0, 9, 8], [1, 2, 3, 4]])
    names, shares = top_sensors(contributions, ["x1", "x2", "x3", "x4"], k=2)
    top = [list(zip(n, s)) for n, s in zip(names, shares)]
    episode, opened = np.array([1, 1, 1, 2]), np.array([1, 0, 0, 1])
    named = episode_sensors(episode, opened, top)
    assert [n for n, _ in named[1]] == ["x1", "x2"]  # not x3, x4 of the later, larger windows
    assert [n for n, _ in named[2]] == ["x4", "x3"]
    # an episode that opened before these windows: its first window here
    assert [n for n, _ in episode_sensors(np.array([0, 1, 1]), np.array([0, 0, 0]), top[1:])[1]] == ["x3", "x4"]


# -- the lifecycle -------------------------------------------------------------------------------
def windows_of(flags, merge_minutes=10):
    """Windows 2 minutes apart with the alarm rule's numbering of ``flags`` (as scores.csv has it)."""
    from lstm_rare_event.alarms.rule import number_episodes

    end = np.datetime64("2026-12-04T00:00", "s") + np.arange(len(flags)) * np.timedelta64(120, "s")
    flags = np.asarray(flags, dtype=bool)
    ep = number_episodes(end, flags, merge_minutes)
    scores = np.where(flags, 5.0 + np.arange(len(flags)) % 7, 1.0)
    return end.astype(np.int64), np.datetime_as_string(end), scores, ep.number, ep.opened.astype(np.int8)


def still_open(lifecycle, last_scored_seconds) -> bool:
    """What the engine asks the alarm rule (merge 10 minutes) after a piece of windows."""
    from lstm_rare_event.alarms.rule import AlarmRule, OpenEpisode

    if lifecycle.episode is None:
        return False
    last = np.datetime64(lifecycle.episode.last_seconds, "s")
    return AlarmRule(4.5, merge_minutes=10).still_open(OpenEpisode(lifecycle.episode.id, last, last),
                                                       np.datetime64(int(last_scored_seconds), "s"))


FLAGS = [0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("calls", [[22], [1] * 22, [2, 5, 6, 9], [13, 9]])
def test_one_opened_and_one_resolved_per_episode_whatever_the_calls(calls):
    from lstm_rare_event.alerts.lifecycle import Lifecycle

    seconds, shown, scores, episode, opened = windows_of(FLAGS)
    lifecycle, told, start = Lifecycle("run", 10), [], 0
    for size in calls:
        piece = slice(start, start + size)
        sensors = {i: [{"name": f"x{start + i}", "share": 1.0, "z": None}] for i in np.flatnonzero(opened[piece])}
        told += lifecycle.observe(seconds[piece], shown[piece], scores[piece], episode[piece], opened[piece],
                                  4.5, sensors)
        told += lifecycle.close(still_open(lifecycle, seconds[piece][-1]))
        # through the state file between calls
        lifecycle = Lifecycle.from_json(json.loads(json.dumps(lifecycle.as_json())), "run", 10)
        start += size
    assert [(e.event, e.fields["episode"]) for e in told] == [
        ("opened", 1), ("resolved", 1), ("opened", 2), ("resolved", 2), ("opened", 3)]
    first_resolved = told[1].fields
    assert (first_resolved["start"], first_resolved["end"]) == (str(shown[1]), str(shown[4]))
    assert first_resolved["windows"] == 3 and first_resolved["duration_minutes"] == 6
    assert first_resolved["peak"] == scores[[1, 2, 4]].max()
    assert told[0].fields["sensors"][0]["name"] == "x1" and lifecycle.episode.id == 3
    assert lifecycle.last_alert == told[-1].as_json()


# -- one call's alerting, through the state ----------------------------------------------------
def test_a_watch_tells_each_event_once_keeps_what_a_sink_refused_and_writes_metrics(tmp_path, capsys):
    from lstm_rare_event import log
    from lstm_rare_event.alerts.watch import Watch

    def prefixes():
        return [line.split(" ", 1)[1].split(":")[0] for line in capsys.readouterr().err.splitlines()]

    log.configure(quiet=True)
    seconds, shown, scores, episode, opened = windows_of(FLAGS)
    failing = SinkOptions(alert_cmd=command("import sys; sys.exit(1)"), alert_log=tmp_path / "a.jsonl",
                          metrics=tmp_path / "lre.prom", timeout=30)
    watch = Watch.start(None, "run", 10)
    watch.windows(seconds[:8], shown[:8], scores[:8], episode[:8], opened[:8], 4.5, {})
    watch.inputs(["incoming/2026-12-05.csv: file not found"], now="2026-12-05T00:00:00")
    watch.finish(still_open(watch.lifecycle, seconds[7]), DataChecks(), {}, str(shown[7]))
    capsys.readouterr()
    watch.tell(failing)
    assert prefixes() == ["alert", "warning", "error", "error"]
    assert len(watch.pending) == 2 and all(p.sinks == [COMMAND] for p in watch.pending)
    watch.metrics(failing, {"last_score": 1.0, "threshold": 4.5}, "score")
    prom = (tmp_path / "lre.prom").read_text()
    assert 'lstm_rare_event_alerts_pending{state="score"} 2' in prom
    assert 'lstm_rare_event_episode_open{state="score"} 1' in prom
    assert 'lstm_rare_event_condition{state="score",condition="missing input"} 1' in prom
    assert 'lstm_rare_event_condition{state="score",condition="drift"} 0' in prom

    # the next call: the state carries the pending events, and the command works now
    watch = Watch.start(json.loads(json.dumps(watch.as_json())), "run", 10)
    watch.inputs([], now="2026-12-05T00:02:00")
    done = watch.tell(SinkOptions(alert_cmd=command("pass"), alert_log=tmp_path / "a.jsonl", timeout=30))
    assert prefixes() == ["warning"]  # the missing input cleared; nothing else is told again
    assert done.delivered == 4 and watch.pending == []
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 3  # the log took each event once


def test_score_tells_a_day_file_that_stops_growing_once(runs, new_csv, tmp_path, monkeypatch):
    """Cron's calls on a file the historian no longer writes: the wall clock is the watch's
    (injected here), the file's rows are the same call after call."""
    from click.testing import CliRunner

    from lstm_rare_event.alerts import watch
    from lstm_rare_event.cli import cli

    now = {}
    monkeypatch.setattr(watch, "wall_clock", lambda: now["time"])
    args = ["score", str(runs["mahalanobis"]), str(new_csv), "--state", str(tmp_path / "s.state"),
            "--out", str(tmp_path / "scores.csv"), "-q"]
    told = []
    for minute in range(0, 40, 2):  # 10:00 to 10:38, every 2 minutes
        now["time"] = f"2026-12-05T10:{minute:02d}:00"
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        told += [line.split(" ", 1)[1] for line in result.stderr.splitlines() if "stale input" in line]
    assert len(told) == 1 and told[0].startswith("warning: stale input since 2026-12-05T10:30:00")
    now["time"] = "2026-12-05T10:40:00"
    result = CliRunner().invoke(cli, ["score", *args[1:], "--stale-after", "1h"])  # a longer limit: clears
    assert result.exit_code == 0 and "warning: stale input cleared" in result.stderr, result.output
    result = CliRunner().invoke(cli, ["score", *args[1:], "--stale-after", "soon"])
    assert result.exit_code == 2 and "--stale-after 'soon': expected a duration" in result.stderr, result.output

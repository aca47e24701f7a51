"""Replay the documented deployment over the real file's last 40 % and report what the operator
would have received (bench/deploy.md, bench/deploy.json).

The deployment is examples/crontab as written: its score line, parsed from the file (the
$(date ...) expressions become the replayed day, the absolute paths land inside the replay
folder), runs every --every minutes of data time (cron's own */2 would be 15 times as many
calls for the same rows), and its nightly line (`make -f examples/Makefile nightly ...`) at
01:30 data time, each per detector through its Makefile variables (TRAIN_OPTS, and WARM_START=
for the detectors that cannot warm start). Day files are written as a historian would: the
rows up to each call's time appended to incoming/<day>.csv, a new file at midnight. Before the
replay, the nightly target makes the first run on the 4 days before it (when the Makefile's
nightly needs a run to start from, its own $(RUN)/threshold.json rule on those days does).

Which run scored is read from each call's --json summary and the state, never assumed from a
folder name; before every nightly the run that is scoring is copied aside, so the day after a
retrain can be scored again with it (in batch, with --history) and the two compared.

    python bench/deploy.py [--detectors mahalanobis,lstm] [--days N] [--every 30]

BENCH_QUICK=1 replays one day with a tiny network, to check the script; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import common
from common import CLI, HERE, QUICK, REAL, ROOT

WORK = common.WORK / "deploy"
START_SHARE = 0.6  # the replay covers the rows after this share of the file
INITIAL_DAYS = 4  # the nightly target's --last 4d
HORIZON_MINUTES = 60.0
INTERVAL_MINUTES = 2.0
TIME_FORMAT = "%m/%d/%y %H:%M"
# What the Makefile needs per detector beyond the crontab's call: the detector (the nightly's
# train takes TRAIN_OPTS), and no warm start for a closed-form fit (the Makefile's WARM_START).
DETECTOR_VARS = {
    "lstm": ["TRAIN_OPTS=--encoder 4,2 --epochs 2"] if QUICK else [],
    "mahalanobis": ["TRAIN_OPTS=--detector mahalanobis", "WARM_START="],
}
PREFIXES = ("alert", "warning", "error", "Error")
_PREFIX = re.compile(r"^(?:\S+\s+)?(alert|warning|error|Error):")
_DATE = re.compile(r"\$\(([^)]*)\)")
_DAY = re.compile(r"date(?:\s+-d\s+(\w+))?\s+\+%F")
_OFFSETS = {None: 0, "today": 0, "yesterday": -1, "tomorrow": 1}


def log(message: str) -> None:
    print(f"[deploy {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the crontab --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CronLine:
    """One crontab entry: its schedule, the folder it cds to and its command's words, in which
    each $(date +%F) is ``{day+K}`` (K days from the call's day)."""

    minute: str
    hour: str
    folder: str
    words: tuple[str, ...]

    def render(self, day: pd.Timestamp, place: Path) -> list[str]:
        """The words for a call on ``day`` run in ``place`` (the replay's stand-in for the folder):
        dates filled in, absolute paths moved inside ``place``."""
        out = []
        for word in self.words:
            word = re.sub(r"\{day([+-]\d+)\}", lambda m: (day + pd.Timedelta(days=int(m[1]))).strftime("%Y-%m-%d"), word)
            if word.startswith(self.folder.rstrip("/") + "/"):
                word = word[len(self.folder.rstrip("/")) + 1:]
            elif word.startswith("/"):
                word = str(place / "root" / word.lstrip("/"))
            out.append(word)
        return out


def _date_word(match: re.Match) -> str:
    day = _DAY.fullmatch(match[1].strip())
    if day is None or day[1] not in _OFFSETS:
        raise ValueError(f"crontab: cannot replay {match[0]} (only $(date +%F) and $(date -d yesterday +%F))")
    return f"{{day{_OFFSETS[day[1]]:+d}}}"


def parse_crontab(text: str) -> dict[str, CronLine]:
    """The crontab's ``score`` and ``nightly`` lines (``cd DIR && COMMAND``), by what they run."""
    lines = {}
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#") or re.match(r"^\w+=", raw):
            continue
        minute, hour, _dom, _month, _dow, command = raw.split(None, 5)
        command = _DATE.sub(_date_word, command.replace("\\%", "%"))
        match = re.match(r"cd\s+(\S+)\s*&&\s*(.*)$", command)
        if not match:
            raise ValueError(f"crontab: expected `cd DIR && COMMAND`: {raw}")
        words = tuple(shlex.split(match[2]))
        kind = "nightly" if words[0] == "make" and "nightly" in words else "score" if words[1:2] == ("score",) else None
        if kind is None:
            raise ValueError(f"crontab: neither a score call nor the nightly target: {raw}")
        lines[kind] = CronLine(minute, hour, match[1], words)
    missing = {"score", "nightly"} - set(lines)
    if missing:
        raise ValueError(f"crontab: no {' or '.join(sorted(missing))} line")
    return lines


def budget(makefile: Path) -> float:
    """The false episodes per day THRESHOLD_OPTS promises (--target of --rule alarms-per-day)."""
    match = re.search(r"^THRESHOLD_OPTS\s*\??=\s*(.*)$", makefile.read_text(), re.M)
    words = shlex.split(match[1]) if match else []
    if "--rule" in words and words[words.index("--rule") + 1] != "alarms-per-day":
        raise ValueError(f"{makefile}: THRESHOLD_OPTS is not an alarms-per-day budget")
    return float(words[words.index("--target") + 1]) if "--target" in words else 1.0


# -- the replay ---------------------------------------------------------------------------------

def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


class Historian:
    """Writes the real file's rows into incoming/<day>.csv as they happen."""

    def __init__(self, data: pd.DataFrame, times: pd.Series, folder: Path):
        self.data, self.times, self.folder = data, times, folder
        self.written = 0
        self.header = ",".join(data.columns) + "\n"

    def until(self, when: pd.Timestamp) -> None:
        stop = int(np.searchsorted(self.times.to_numpy(), np.datetime64(when), side="right"))
        if stop <= self.written:
            return
        rows = self.data.iloc[self.written:stop]
        for day, part in rows.groupby(self.times.iloc[self.written:stop].dt.strftime("%Y-%m-%d"), sort=True):
            path = self.folder / f"{day}.csv"
            new = not path.exists()
            with path.open("a") as f:
                if new:
                    f.write(self.header)
                part.to_csv(f, header=False, index=False)
        self.written = stop


def run(words: list[str], place: Path) -> tuple[int, str, str, float]:
    began = time.perf_counter()
    done = subprocess.run(words, cwd=place, capture_output=True, text=True, env=env())
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - began


def score_words(line: CronLine, day: pd.Timestamp, place: Path) -> list[str]:
    words = line.render(day, place)
    return [*CLI, *words[1:], "--json"]


def nightly_words(line: CronLine, detector: str, stamp: pd.Timestamp, makefile: Path) -> list[str]:
    words = list(line.words)
    words[words.index("-f") + 1] = str(makefile)
    words = [f"CLI={shlex.join(CLI)}" if w.startswith("CLI=") else w for w in words]
    # STAMP: what $(shell date) gives the Makefile at the replayed night (runs/<date and time>).
    return [*words, *DETECTOR_VARS[detector], f"STAMP={stamp.strftime('%Y-%m-%dT%H%M%S')}"]


def scoring_run(place: Path, line: CronLine) -> Path:
    """The run the score line names, links followed: the one a call now would load."""
    return (place / line.render(pd.Timestamp("2000-01-01"), place)[2]).resolve()


def initial_run(place: Path, lines: dict, detector: str, makefile: Path, night: pd.Timestamp) -> dict:
    words = nightly_words(lines["nightly"], detector, night, makefile)
    rc, out, err, wall = run(words, place)
    record = {"how": "nightly", "rc": rc, "stderr": err.strip().splitlines()[-5:], "wall_seconds": round(wall, 1)}
    if rc == 0 and (scoring_run(place, lines["score"]) / "threshold.json").exists():
        return record
    # The Makefile's nightly needs a run to start from: its own rules make the first one.
    name = lines["score"].words[2]
    shutil.rmtree(place / name, ignore_errors=True)
    days = sorted((place / "incoming").glob("*.csv"))[-INITIAL_DAYS:]
    first = place / "first-days.csv"
    pd.concat([pd.read_csv(d, dtype=str, keep_default_na=False) for d in days]).to_csv(first, index=False)
    train = [v for v in DETECTOR_VARS[detector] if v.startswith("TRAIN_OPTS=")]
    words = ["make", "-f", str(makefile), f"{name}/threshold.json", f"CLI={shlex.join(CLI)}", f"RUN={name}",
             f"DATA={first.name}", "PREPARE_OPTS=--fractions 0.75,0.25,0", *train, "-s"]
    rc2, _, err2, wall2 = run(words, place)
    if rc2 != 0:
        raise SystemExit(f"deploy: the first run could not be made:\n{err}\n{err2}")
    return {**record, "how": f"{name}/threshold.json rule (the nightly target failed: rc {rc})",
            "wall_seconds": round(wall + wall2, 1)}


def count_lines(stderr: str) -> dict:
    """The stderr lines by prefix (after the log's timestamp, when there is one)."""
    counts = {p: 0 for p in PREFIXES}
    counts["other"] = 0
    for text in stderr.splitlines():
        if text.strip():
            match = _PREFIX.match(text)
            counts[match[1] if match else "other"] += 1
    return counts


def replay(detector: str, data: pd.DataFrame, times: pd.Series, start: pd.Timestamp, end: pd.Timestamp,
           lines: dict, makefile: Path, every: int) -> dict:
    place = WORK / detector
    shutil.rmtree(place, ignore_errors=True)
    for sub in ("incoming", "scores", "state", "kept", "root"):
        (place / sub).mkdir(parents=True)
    historian = Historian(data, times, place / "incoming")
    historian.until(start - pd.Timedelta(seconds=1))
    began = time.perf_counter()
    first = initial_run(place, lines, detector, makefile, start - pd.Timedelta(days=1) + pd.Timedelta(hours=1, minutes=30))
    log(f"{detector}: first run ({first['how']}, {first['wall_seconds']} s)")
    calls, nights = [], []
    minute, hour = int(lines["nightly"].minute), int(lines["nightly"].hour)
    for when in pd.date_range(start, end, freq=f"{every}min"):
        historian.until(when)
        day = when.normalize()
        rc, out, err, wall = run(score_words(lines["score"], day, place), place)
        summary = json.loads(out) if rc in (0, 3) and out.strip() else {}
        calls.append({"time": str(when), "day": str(day.date()), "rc": rc, "lines": count_lines(err),
                      "stderr": [t for t in err.splitlines() if t.strip()],
                      "run": summary.get("run") or summary.get("run_dir"), "threshold": summary.get("threshold"),
                      "windows": summary.get("windows"), "opened": summary.get("episodes_opened"),
                      "merge_minutes": summary.get("merge_minutes"),
                      "state_run": _state_run(place), "wall_seconds": round(wall, 2)})
        if rc not in (0, 3):
            log(f"{detector} {when}: score exit {rc}: {err.strip()[-300:]}")
        if when.hour == hour and when.minute == minute and when > start:
            nights.append(night(place, lines, detector, makefile, when))
    return {"first_run": first, "calls": calls, "nights": nights, "wall_seconds": round(time.perf_counter() - began, 1)}


def _state_run(place: Path):
    for path in (place / "state").glob("*.state"):
        try:
            return json.loads(path.read_text())["run"]
        except (ValueError, KeyError, OSError):
            return None
    return None


def night(place: Path, lines: dict, detector: str, makefile: Path, when: pd.Timestamp) -> dict:
    before = scoring_run(place, lines["score"])
    kept = place / "kept" / when.strftime("%Y-%m-%d")
    shutil.copytree(before, kept, symlinks=True)
    old = json.loads((before / "threshold.json").read_text())["value"]
    rc, _, err, wall = run(nightly_words(lines["nightly"], detector, when, makefile), place)
    after = scoring_run(place, lines["score"])
    chosen = json.loads((after / "threshold.json").read_text())
    new = chosen["value"]
    log(f"{detector} nightly {when}: exit {rc}, threshold {old:.4g} -> {new:.4g} ({wall:.0f} s)")
    return {"time": str(when), "rc": rc, "stderr": [t for t in err.splitlines() if t.strip()][-10:],
            "previous_run": str(kept.relative_to(place)), "threshold_before": old, "threshold_after": new,
            # the rule's own choice, before threshold --carry averaged it with the old threshold
            "threshold_chosen": chosen.get("carry", {}).get("chosen", new),
            "wall_seconds": round(wall, 1)}


# -- the figures --------------------------------------------------------------------------------

def break_times(data: pd.DataFrame, times: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """The first row of each run of y = 1 in [start, end]."""
    y = data["y"].astype(float).to_numpy() == 1
    first = y & ~np.r_[False, y[:-1]]
    t = times.to_numpy()[first]
    return t[(t >= np.datetime64(start)) & (t <= np.datetime64(end))].astype("datetime64[s]")


def scored_windows(folder: Path, start: pd.Timestamp) -> pd.DataFrame:
    frames = [pd.read_csv(p, keep_default_na=False) for p in sorted(folder.glob("*.csv"))]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["time", "score", "flag"])
    frame["time"] = pd.to_datetime(frame["time"])
    return frame[frame["time"] >= start].sort_values("time", kind="stable").reset_index(drop=True)


def alarms(frame: pd.DataFrame, breaks: np.ndarray, merge: float) -> dict:
    """Breaks warned within the horizon beside chance and the on-time share, false episodes per
    day, and a bootstrap interval of the warned share by break event."""
    from lstm_rare_event.alarms.bootstrap import pooled_metrics
    from lstm_rare_event.alarms.episodes import episode_metrics
    from lstm_rare_event.alarms.evaluation import warned_chance
    from lstm_rare_event.alarms.thresholds import Scored

    end = frame["time"].to_numpy().astype("datetime64[s]")
    flags = frame["flag"].to_numpy().astype(bool)
    ep = episode_metrics(end, flags, breaks, INTERVAL_MINUTES, merge, HORIZON_MINUTES)
    s = Scored(frame["score"].to_numpy(dtype=float), np.zeros(len(frame), dtype=np.int8), end, breaks,
               INTERVAL_MINUTES, merge, HORIZON_MINUTES)
    chance = warned_chance(s, flags)
    # Each break an "experiment" of one positive: resampling them is the bootstrap by break event.
    counts = [[1, 0, 0, 0] if b["warned"] else [0, 0, 1, 0] for b in ep["breaks"]]
    interval = None
    if counts:
        mar = pooled_metrics(counts, replicates=1000, seed=0)["mar_interval"]
        interval = [1 - mar[1], 1 - mar[0]]
    return {**{k: v for k, v in ep.items() if k != "breaks"}, **chance, "warned_share_interval": interval,
            "opened_column": int(frame["opened"].sum()) if "opened" in frame else None}


def per_day(calls: list[dict]) -> dict:
    """Lines per day of data time: each day's counts, and the mean and max over the whole days
    (a last day with fewer calls is listed, not averaged)."""
    days = {}
    for c in calls:
        day = days.setdefault(c["day"], {"calls": 0, **{k: 0 for k in c["lines"]}})
        day["calls"] += 1
        for k, v in c["lines"].items():
            day[k] += v
    full = max((d["calls"] for d in days.values()), default=0)
    whole = [d for d in days.values() if d["calls"] == full]
    kinds = [k for k in next(iter(days.values()), {}) if k != "calls"]
    return {"days": days, "whole_days": len(whole),
            **{k: {"mean": float(np.mean([d[k] for d in whole])), "max": int(max(d[k] for d in whole)),
                   "total": int(sum(d[k] for d in days.values()))} for k in kinds}}


def logged_events(place: Path, line: CronLine) -> dict:
    words = line.words
    path = words[words.index("--alert-log") + 1] if "--alert-log" in words else None
    if path is None:
        return {}
    path = Path(line.render(pd.Timestamp("2000-01-01"), place)[words.index("--alert-log") + 1])
    path = path if path.is_absolute() else place / path
    events = [json.loads(t) for t in path.read_text().splitlines() if t.strip()] if path.exists() else []
    kinds = {}
    for e in events:
        kinds[e["event"]] = kinds.get(e["event"], 0) + 1
    ids = [e["id"] for e in events]
    return {"kinds": kinds, "events": len(events), "repeated_ids": len(ids) - len(set(ids))}


def after_retrains(place: Path, replayed: dict, frame: pd.DataFrame, breaks: np.ndarray, merge: float) -> list[dict]:
    """For each night the run changed, the rest of that day scored by the run before it (batch,
    with yesterday's file as --history) beside what the replay's new run flagged."""
    rows = []
    for n in replayed["nights"]:
        when = pd.Timestamp(n["time"])
        # Which run scored, as the state recorded it around the night (not a folder name).
        before = [c["state_run"] for c in replayed["calls"] if pd.Timestamp(c["time"]) <= when]
        after = [c["state_run"] for c in replayed["calls"] if pd.Timestamp(c["time"]) > when]
        if n["rc"] != 0 or not before or not after or before[-1] == after[0]:
            if n["rc"] == 0:
                rows.append({"night": n["time"], "error": "the nightly exited 0 but the next call scored with the same run"})
            continue
        day, yesterday = when.strftime("%Y-%m-%d"), (when - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        out = place / "compare" / f"{day}.csv"
        out.parent.mkdir(exist_ok=True)
        words = [*CLI, "score", n["previous_run"], f"incoming/{day}.csv", "--history", f"incoming/{yesterday}.csv",
                 "--out", str(out.relative_to(place)), "--json", "-q"]
        rc, _, err, _ = run(words, place)
        if rc not in (0, 3):
            rows.append({"night": n["time"], "error": err.strip()[-300:]})
            continue
        rows.append({"night": n["time"], "threshold_old": n["threshold_before"], "threshold_new": n["threshold_after"],
                     **day_after(when, frame, compared_day(place, when), breaks, merge)})
    return rows


def compared_day(place: Path, when: pd.Timestamp) -> pd.DataFrame:
    """The day of the retrain at ``when`` as the run before it scored it (retrains' compare/ file)."""
    old = pd.read_csv(place / "compare" / f"{when:%Y-%m-%d}.csv", keep_default_na=False)
    old["time"] = pd.to_datetime(old["time"])
    return old


def day_after(when: pd.Timestamp, new: pd.DataFrame, old: pd.DataFrame, breaks, merge: float) -> dict:
    """The rest of the day after the retrain at ``when``: its breaks, and the alarm episodes and
    breaks warned of the new run's windows and the old run's (each with time and flag); silent
    when the new run raised no episode where the old one did."""
    from lstm_rare_event.alarms.episodes import episode_metrics

    stop = when.normalize() + pd.Timedelta(days=1)
    day_breaks = breaks[(breaks > np.datetime64(when)) & (breaks < np.datetime64(stop))]
    row = {"breaks": int(day_breaks.size)}
    for name, frame in (("new", new), ("old", old)):
        part = frame[(frame["time"] > when) & (frame["time"] < stop)]
        ep = episode_metrics(part["time"].to_numpy().astype("datetime64[s]"), part["flag"].to_numpy().astype(bool),
                             day_breaks, INTERVAL_MINUTES, merge, HORIZON_MINUTES)
        row[f"episodes_{name}"], row[f"warned_{name}"] = ep["episodes"], ep["warned"]
        row[f"windows_{name}"] = len(part)
    row["silent"] = bool(row["episodes_new"] == 0 and row["episodes_old"] > 0)
    return row


def report(detector: str, replayed: dict, data, times, start, end, lines: dict, target: float) -> dict:
    place = WORK / detector
    out_flag = lines["score"].words.index("--out") + 1
    scores_dir = (place / lines["score"].render(start, place)[out_flag]).parent
    frame = scored_windows(scores_dir, start)
    breaks = break_times(data, times, start, end)
    merges = [c.get("merge_minutes") for c in replayed["calls"]]
    merge = next((m for m in merges if m), 30.0)
    result = {"alarms": alarms(frame, breaks, merge), "lines": per_day(replayed["calls"]),
              "events": logged_events(place, lines["score"]), "budget": target,
              "retrains": after_retrains(place, replayed, frame, breaks, merge),
              "mail": [{"time": c["time"], "line": t} for c in replayed["calls"] for t in c["stderr"]],
              "calls": len(replayed["calls"]), "failed_calls": sum(c["rc"] not in (0, 3) for c in replayed["calls"]),
              "nights": [{k: v for k, v in n.items()} for n in replayed["nights"]],
              "first_run": replayed["first_run"], "wall_seconds": replayed["wall_seconds"],
              "call_seconds_mean": float(np.mean([c["wall_seconds"] for c in replayed["calls"]]))}
    result["done_when"] = done_when(result)
    return result


def done_when(r: dict) -> dict:
    lines, events = r["lines"], r["events"]
    total = {k: sum(d[k] for d in lines["days"].values()) for k in ("alert", "warning", "error", "Error", "other")}
    kinds = events.get("kinds", {})
    episodes = kinds.get("opened", 0) + kinds.get("resolved", 0)
    conditions = kinds.get("condition-started", 0) + kinds.get("condition-cleared", 0)
    false_rate = r["alarms"]["false_episodes_per_day"]
    silent = [x["night"] for x in r["retrains"] if x.get("silent")]
    return {
        "one line per episode opened or resolved": {
            "met": total["alert"] <= episodes and not events.get("repeated_ids"),
            "measured": f"{total['alert']} alert lines, {kinds.get('opened', 0)} opened + {kinds.get('resolved', 0)} "
                        f"resolved events in --alert-log ({events.get('repeated_ids', 0)} repeated ids)"},
        "one line per data condition starting or clearing": {
            "met": total["warning"] <= conditions,
            "measured": f"{total['warning']} warning lines, {kinds.get('condition-started', 0)} started + "
                        f"{kinds.get('condition-cleared', 0)} cleared events"},
        "nothing else mailed": {
            "met": total["other"] == 0 and total["Error"] == 0 and total["error"] == 0,
            "measured": f"{total['other']} other lines, {total['error']} error:, {total['Error']} Error:"},
        "budget held within 1.5x": {
            "met": bool(np.isfinite(false_rate) and false_rate <= 1.5 * r["budget"]),
            "measured": f"{false_rate:.2f} false episodes per day against {r['budget']:g}"},
        "no silent day after a retrain": {
            "met": not silent and all("error" not in x for x in r["retrains"]) and bool(r["retrains"]),
            "measured": f"{len(silent)} silent of {len(r['retrains'])} retrained days"
                        + (f" ({', '.join(silent)})" if silent else "")
                        + ("" if r["retrains"] else ": no nightly retrain succeeded")},
    }


# -- the report ---------------------------------------------------------------------------------

def _pct(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.0%}"


def _total(lines: dict, kind: str) -> float:
    return lines[kind].get("total", lines[kind]["mean"] * len(lines["days"]))


def markdown(out: dict) -> str:
    s = out["settings"]
    md = ["# The documented deployment, replayed on the real file", "",
          f"Made by `{out['command']}` ({out['wall_minutes']:.0f} min wall on the shared 2-core machine).", "",
          f"Replayed {s['start']} to {s['end']} ({s['days']:.1f} days, the real file's rows from "
          f"{s['start_share']:.0%} on): the score line of examples/crontab every {s['every_minutes']} minutes of data "
          f"time, parsed from the file (`{s['score_line']}`), and its nightly line at "
          f"{s['nightly_at']} data time (`{s['nightly_line']}`) with, per detector, {s['detector_vars']}. "
          f"Day files written as the historian would. Breaks are warned when an alarm episode starts at most "
          f"{HORIZON_MINUTES:g} min before; chance is the same alarms shifted in time; the interval is a "
          "bootstrap by break event (95 %). The budget is examples/Makefile's THRESHOLD_OPTS. Figures count the "
          "windows from the replay's start; line counts are of the score calls' stderr (with -q), per replayed day "
          "of data time.", ""]
    if s.get("note"):
        md += [s["note"], ""]
    md += ["## Per detector", "",
           "| detector | calls (failed) | nights ok/failed | alert lines per whole day mean (max) | warning lines per whole day mean (max) "
           "| error lines | other lines | breaks warned ≤60 min | 95 % interval | chance | alarm on | episodes "
           "| false episodes/day (budget) | s/call |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in out["detectors"].items():
        a, ln = r["alarms"], r["lines"]
        ok = sum(n["rc"] == 0 for n in r["nights"])
        iv = a["warned_share_interval"]
        md.append(
            f"| {name} | {r['calls']} ({r['failed_calls']}) | {ok}/{len(r['nights']) - ok} "
            f"| {ln['alert']['mean']:.1f} ({ln['alert']['max']}) | {ln['warning']['mean']:.1f} ({ln['warning']['max']}) "
            f"| {_total(ln, 'error') + _total(ln, 'Error'):.0f} | {_total(ln, 'other'):.0f} "
            f"| {a['warned']} of {a['n_breaks']} ({_pct(a['warned_share'])}) "
            f"| {'–' if iv is None else f'{iv[0]:.0%}–{iv[1]:.0%}'} | {_pct(a['warned_share_chance'])} "
            f"| {_pct(a['alarm_on_share'])} | {a['episodes']} | {a['false_episodes_per_day']:.2f} ({r['budget']:g}) "
            f"| {r['call_seconds_mean']:.1f} |")
    for name, r in out["detectors"].items():
        md += ["", f"## {name}", "", f"First run: {r['first_run']['how']}.", "", "Lines per replayed day (stderr of the score calls):", "",
               "| day | alert | warning | error | Error | other |", "|---|---|---|---|---|---|"]
        for day, d in r["lines"]["days"].items():
            md.append(f"| {day} | {d['alert']} | {d['warning']} | {d['error']} | {d['Error']} | {d['other']} |")
        md += ["", f"Events in --alert-log: {r['events'].get('kinds')}.", "",
               "Nightly retrains and the rest of each day after one, scored also by the run before it "
               "(batch, --history):", "",
               "| night | exit | threshold old → new (the rule's choice) | breaks | episodes new (old) "
               "| warned new (old) | silent |",
               "|---|---|---|---|---|---|---|"]
        by_night = {x["night"]: x for x in r["retrains"]}
        for n in r["nights"]:
            x = by_night.get(n["time"], {})
            chosen = n.get("threshold_chosen", n["threshold_after"])
            line = (f"| {n['time']} | {n['rc']} | {n['threshold_before']:.4g} → {n['threshold_after']:.4g}"
                    f"{f' ({chosen:.4g})' if chosen != n['threshold_after'] else ''} ")
            if "episodes_new" in x:
                line += (f"| {x['breaks']} | {x['episodes_new']} ({x['episodes_old']}) | {x['warned_new']} "
                         f"({x['warned_old']}) | {'**yes**' if x['silent'] else 'no'} |")
            else:
                told = [t for t in n["stderr"] if t.startswith("Error:")] or n["stderr"][-1:]
                line += f"| | | | {x.get('error', told[0] if n['rc'] and told else '')} |"
            md.append(line)
        md += ["", "Done when (issue 19):", ""]
        for what, v in r["done_when"].items():
            md.append(f"- {what}: **{'met' if v['met'] else 'missed'}** ({v['measured']})")
    return "\n".join(md) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detectors", default="mahalanobis,lstm")
    parser.add_argument("--days", type=float, default=1 if QUICK else None, help="replay only this many days")
    parser.add_argument("--every", type=int, default=30, help="minutes of data time between score calls")
    parser.add_argument("--start", type=float, default=START_SHARE,
                        help="replay from the day after this share of the file: an earlier share (0.3) to choose "
                             "settings on, never the reported period's")
    parser.add_argument("--out", default="deploy", help="bench/OUT.md and bench/OUT.json (another name keeps deploy.md)")
    parser.add_argument("--note", default="", help="a sentence for deploy.md (why fewer detectors or days)")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite bench/OUT.md from bench/OUT.json")
    parser.add_argument("--crontab", type=Path, default=ROOT / "examples/crontab")
    parser.add_argument("--makefile", type=Path, default=ROOT / "examples/Makefile")
    args = parser.parse_args(argv)
    name = f"{args.out}-quick" if QUICK else args.out
    if args.markdown_only:
        (HERE / f"{name}.md").write_text(markdown(json.loads((HERE / f"{name}.json").read_text())))
        return 0
    if not REAL.exists():
        print(f"deploy: the real data set is needed at {REAL}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    lines = parse_crontab(args.crontab.read_text())
    target = budget(args.makefile)
    data = pd.read_csv(REAL, dtype=str, keep_default_na=False)
    times = pd.to_datetime(data["time"], format=TIME_FORMAT)
    start = times.iloc[int(len(data) * args.start)].normalize() + pd.Timedelta(days=1)
    end = times.iloc[-1] if args.days is None else min(times.iloc[-1], start + pd.Timedelta(days=args.days))
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    command = "python bench/deploy.py" + ("" if argv is None and len(sys.argv) == 1 else " " + shlex.join(sys.argv[1:]))
    out = {"command": ("BENCH_QUICK=1 " if QUICK else "") + command,
           "settings": {"start": str(start), "end": str(end), "days": (end - start) / pd.Timedelta(days=1),
                        "start_share": args.start, "every_minutes": args.every,
                        "score_line": shlex.join(lines["score"].words), "nightly_line": shlex.join(lines["nightly"].words),
                        "nightly_at": f"{int(lines['nightly'].hour):02d}:{int(lines['nightly'].minute):02d}",
                        "detector_vars": {d: DETECTOR_VARS[d] for d in detectors}, "note": args.note},
           "detectors": {}}
    target_json = HERE / f"{name}.json"
    for detector in detectors:
        replayed = replay(detector, data, times, start, end, lines, args.makefile, args.every)
        out["detectors"][detector] = report(detector, replayed, data, times, start, end, lines, target)
        out["wall_minutes"] = (time.perf_counter() - began) / 60
        target_json.write_text(json.dumps(out, indent=2, default=str) + "\n")  # a long replay keeps what it has
        (HERE / f"{name}.md").write_text(markdown(out))
        log(f"{detector}: done in {replayed['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

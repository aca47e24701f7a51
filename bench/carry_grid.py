"""What `threshold --carry W` would have done in a replay of bench/deploy.py, for several W,
without replaying each (bench/OUT.md): the table that chose examples/Makefile's CARRY.

Nothing a run scores depends on its threshold: the nightly runs, their scores and the rule's own
choices (pooled, each earlier run scoring its own days) are the same under any W. So the
replay's windows, each scored by the run that scored it live, and each night's day scored again
by the run before it (the replay's compare/ folder) are flagged anew under the thresholds W
gives, night after night (each night's carried from the one before):

    t_0 = the first run's,  t_k = previous ** W * chosen_k ** (1 - W)

W = 0 gives the replay's own figures back when the replay ran without --carry.

    python bench/carry_grid.py --replay choose-pool3 [--detector mahalanobis] [--weights 0,0.5] [--out NAME]

reads bench/REPLAY.json and the replay's work folder (bench/work/deploy/DETECTOR, BENCH_WORK).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

import numpy as np
import pandas as pd

import deploy
from common import HERE, REAL

from lstm_rare_event.alarms.thresholds import carried


def chain(chosen: list[float], weight: float) -> list[float]:
    """The thresholds night after night: the first run's, then each carried from the one before."""
    out = [chosen[0]]
    for value in chosen[1:]:
        out.append(carried(value, out[-1], weight))
    return out


def grid(replay: dict, detector: str, weights: list[float]) -> list[dict]:
    r, s = replay["detectors"][detector], replay["settings"]
    start, end = pd.Timestamp(s["start"]), pd.Timestamp(s["end"])
    place = deploy.WORK / detector
    data = pd.read_csv(REAL, dtype=str, keep_default_na=False)
    times = pd.to_datetime(data["time"], format=deploy.TIME_FORMAT)
    breaks = deploy.break_times(data, times, start, end)
    frame = deploy.scored_windows(place / "scores", start)
    nights = [pd.Timestamp(n["time"]) for n in r["nights"]]
    if not nights or any(n["rc"] for n in r["nights"]):
        raise SystemExit("carry_grid: the replay needs every night retrained")
    chosen = [r["nights"][0]["threshold_before"]] + [n.get("threshold_chosen", n["threshold_after"]) for n in r["nights"]]
    # A window was scored by the first call at or after it, with the run of the nights before that call.
    every = pd.Timedelta(minutes=s["every_minutes"])
    call = start + np.ceil((frame["time"] - start) / every) * every
    run_of = np.searchsorted(np.array(nights, dtype="datetime64[ns]"), call.to_numpy(), side="left")
    merge = r["alarms"]["merge_minutes"]
    compared = {when: deploy.compared_day(place, when) for when in nights}
    rows = []
    for weight in weights:
        t = chain(chosen, weight)
        flagged = frame.assign(flag=(frame["score"].to_numpy() > np.array(t)[run_of]).astype(int))
        days = []
        for k, when in enumerate(nights):
            old = compared[when].assign(flag=compared[when]["score"].to_numpy() > t[k])
            day = deploy.day_after(when, flagged, old, breaks, merge)
            days.append({"night": str(when), "old": t[k], "new": t[k + 1], "chosen": chosen[k + 1],
                         **{key: day[key] for key in ("episodes_new", "episodes_old", "warned_new", "warned_old",
                                                      "silent")}})
        rows.append({"weight": weight, "alarms": deploy.alarms(flagged, breaks, merge), "nights": days})
    return rows


def markdown(replay_name: str, detector: str, replay: dict, rows: list[dict], budget: float, note: str = "") -> str:
    s = replay["settings"]
    md = [f"# threshold --carry W over a replay, {detector}", "",
          f"Made by `python bench/carry_grid.py {shlex.join(sys.argv[1:])}` from the replay of bench/{replay_name}.md "
          f"({s['start']} to {s['end']}, the real file's rows from {s['start_share']:.0%} on): its windows, each "
          "scored by the run that scored it live, and each retrained day scored again by the run before (as "
          "bench/deploy.py does), flagged under the thresholds W gives night after night; W = 0: the rule's "
          "choices as they are (the replay's own figures when it ran without --carry). Breaks warned within 60 "
          f"min; the interval is a bootstrap by break event (95 %); the budget is {budget:g} false episodes a day.", "",
          *([note, ""] if note else []),
          "| W | silent days after a retrain | breaks warned | 95 % interval | chance | alarm on | episodes "
          "| false episodes/day | thresholds night by night |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        a, iv = row["alarms"], row["alarms"]["warned_share_interval"]
        silent = [x["night"][5:10] for x in row["nights"] if x["silent"]]
        md.append(f"| {row['weight']:g} | {len(silent)}{f' ({chr(44).join(silent)})' if silent else ''} "
                  f"| {a['warned']} of {a['n_breaks']} ({deploy._pct(a['warned_share'])}) "
                  f"| {'–' if iv is None else f'{iv[0]:.0%}–{iv[1]:.0%}'} | {deploy._pct(a['warned_share_chance'])} "
                  f"| {deploy._pct(a['alarm_on_share'])} | {a['episodes']} | {a['false_episodes_per_day']:.2f} "
                  f"| {' → '.join(f'{x:.4g}' for x in [row['nights'][0]['old']] + [x['new'] for x in row['nights']])} |")
    md += ["", "Per night (episodes new (old), warned new (old), the old run at the threshold before the night):", "",
           "| W | " + " | ".join(x["night"][:10] for x in rows[0]["nights"]) + " |",
           "|---|" + "---|" * len(rows[0]["nights"])]
    for row in rows:
        md.append(f"| {row['weight']:g} | " + " | ".join(
            f"{x['episodes_new']} ({x['episodes_old']}), {x['warned_new']} ({x['warned_old']})"
            + (" **silent**" if x["silent"] else "") for x in row["nights"]) + " |")
    return "\n".join(md) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replay", required=True, help="bench/REPLAY.json, made by bench/deploy.py --out REPLAY")
    parser.add_argument("--detector", default="mahalanobis")
    parser.add_argument("--weights", default="0,0.25,0.5,0.67,0.75")
    parser.add_argument("--out", default=None, help="bench/OUT.md  [default: REPLAY-carry]")
    parser.add_argument("--note", default="", help="a sentence for OUT.md (what the grid is for)")
    args = parser.parse_args(argv)
    replay = json.loads((HERE / f"{args.replay}.json").read_text())
    rows = grid(replay, args.detector, [float(w) for w in args.weights.split(",")])
    target = replay["detectors"][args.detector]["budget"]
    (HERE / f"{args.out or args.replay + '-carry'}.md").write_text(markdown(args.replay, args.detector, replay, rows, target,
                                                                              args.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())

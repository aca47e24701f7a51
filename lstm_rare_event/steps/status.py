"""The ``status`` step: where a cron scoring job stands, from its state file and its run, without
scoring anything: the run and its age, the threshold, the last row scored, the open episode,
the last alert, the data conditions in force and the events a sink has not taken yet."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from lstm_rare_event.run import DEFAULT_WAIT, THRESHOLD_JSON, Run, resolve_run, through_link
from lstm_rare_event.scoring.state import read_progress


def status(run_dir, state_path, wait: float = DEFAULT_WAIT) -> dict:
    """What ``score --state STATE`` with the run in ``run_dir`` knows now (read only)."""
    run_dir = Path(run_dir)
    resolved = resolve_run(run_dir)  # once: a promote meanwhile must not mix two runs' facts
    run = Run(resolved)
    with through_link(run_dir, resolved), run.reading(wait):
        threshold = run.threshold()
    made = (run.path / THRESHOLD_JSON).stat().st_mtime
    state_path = Path(state_path)
    merge = threshold.merge_minutes if threshold.merge_minutes is not None else 0.0
    progress = read_progress(state_path, run_dir, merge)
    watch, written_with = progress["watch"], progress["written_with"]
    episode = watch.lifecycle.episode
    return {
        "run": {"path": str(run_dir), "resolved": str(run.path.resolve()),
                "age_hours": round(max(time.time() - made, 0.0) / 3600, 2),
                "thresholded": dt.datetime.fromtimestamp(made, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "threshold": threshold.value,
        "state": {"path": str(state_path), "written_with": written_with,
                  "same_run": Path(written_with) == run.path.resolve()},
        "last_row": progress["last_row"],
        "last_scored": progress["last_scored"],
        "rows": progress["rows"],
        "windows": progress["windows"],
        "last_score": watch.last_score,
        "open_episode": None if episode is None else {"id": episode.id, "start": episode.start,
                                                      "last_flagged": episode.last, "peak": episode.peak,
                                                      "windows": episode.windows},
        "last_alert": watch.lifecycle.last_alert,
        "conditions": watch.conditions.as_json(),
        "pending_events": len(watch.pending),
        "last_adopted": progress["last_adopted"],
    }


def status_text(info: dict) -> str:
    run, episode, alert = info["run"], info["open_episode"], info["last_alert"]
    shown = run["path"] if run["resolved"] == run["path"] else f"{run['path']} -> {run['resolved']}"
    lines = [f"run: {shown}, thresholded {run['thresholded']} ({run['age_hours']:g} h ago)",
             f"threshold: {info['threshold']:.6g}",
             f"last row: {info['last_row'] or '-'}; last scored window: {info['last_scored'] or '-'} "
             f"({info['windows']:,} windows, {info['rows']:,} rows since the state was created)",
             "open episode: " + ("none" if episode is None else
                                 f"{episode['id']} since {episode['start']}, last flagged {episode['last_flagged']}, "
                                 f"peak {episode['peak']:.4g}, {episode['windows']:,} flagged windows"),
             "last alert: " + ("none" if alert is None else alert["message"])]
    conditions = info["conditions"]
    lines.append("conditions: " + ("none" if not conditions else
                                   "; ".join(f"{c['condition']} since {c['since']}" for c in conditions)))
    if info["pending_events"]:
        lines.append(f"pending: {info['pending_events']} event(s) a sink has not taken; retried on the next call")
    adopted = info["last_adopted"]
    if adopted:
        lines.append(f"adopted: from {adopted['from']} at {adopted['at']} (windows after {adopted['after'] or '-'})")
    if not info["state"]["same_run"]:
        lines.append(f"note: the state was last written with {info['state']['written_with']}")
    return "\n".join(lines)

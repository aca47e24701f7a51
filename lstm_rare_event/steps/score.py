"""The ``score`` command: one input to one output, or several inputs to a folder, through the
scoring library (:mod:`lstm_rare_event.scoring`), and the line it prints."""

from __future__ import annotations

from pathlib import Path

from lstm_rare_event.errors import UserError
from lstm_rare_event.scoring import calls
from lstm_rare_event.scoring.engine import ScoreOptions


def run_score(run_dir, inputs, out_path=None, out_dir=None, options: ScoreOptions = ScoreOptions(), history=None,
              state_path=None, on_done=None) -> dict:
    """Score ``inputs`` with the run in ``run_dir``: one INPUT to ``out_path``, or each to
    ``out_dir`` (``on_done`` called after each; the summary lists the inputs scored and failed)."""
    if out_path is not None and out_dir is not None:
        raise UserError("--out and --out-dir are mutually exclusive: --out FILE for one INPUT, --out-dir DIR "
                        "for one output per INPUT")
    if out_path is None and out_dir is None:
        raise UserError("give --out FILE (one INPUT) or --out-dir DIR (one output per INPUT)")
    if out_dir is not None:
        return calls.score_many(run_dir, inputs, out_dir, options, history=history, state_path=state_path,
                                on_done=on_done)
    return calls.score(run_dir, list(inputs), out_path, options, history=history, state_path=state_path)


def summary_line(summary: dict) -> str:
    """One line: windows and rows scored, alarms, the episodes this call opened (the alert),
    or the episode still open."""
    alarms = summary["alarms"]
    line = f"scored {summary['windows']:,} windows ({summary['rows']:,} rows)"
    if summary.get("skipped_rows"):
        line += f", {summary['skipped_rows']:,} rows seen before skipped"
    line += f": {alarms:,} alarm{'' if alarms == 1 else 's'}"
    if alarms:
        line += f", first {summary['first_alarm']}, last {summary['last_alarm']}"
    opened = summary["episodes_opened"]
    if opened:
        first = opened[0]
        sensors = f" (top sensors {', '.join(first['sensors'])})" if first["sensors"] else ""
        more = f", {len(opened)} new alarm episodes, the first" if len(opened) > 1 else "; new alarm episode"
        line += f"{more} (#{first['id']}) opened at {first['start']}{sensors}"
    elif summary.get("open_episode"):
        line += f"; alarm episode {summary['open_episode']['id']} still open"
    line = f"{line} -> {summary['output']}"
    if Path(summary["run_dir"]).absolute() != Path(summary["run"]):
        line += f" (run {summary['run']})"  # RUN was a link (current): the run it pointed to
    return line

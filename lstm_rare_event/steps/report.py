"""The ``report`` step: one self-contained HTML file about a run, for a browser or a mail.

Everything is inside the file: the figures are PNG images embedded as base64 ``data:`` URIs,
the style is inline, and nothing is fetched from the network. Sections appear for the steps
the run has done: the data (prepare.json), the options, the detector (``inspect``), the
threshold, the evaluation and its verdict, and, given ``score``'s CSV, the latest alarms.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import tempfile
from pathlib import Path

import numpy as np

from lstm_rare_event import log
from lstm_rare_event.version import __version__
from lstm_rare_event.alarms import plots
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import atomic_write_text, to_jsonable
from lstm_rare_event.run import (
    EVALUATE_JSON, HISTOGRAM_PNG, LOSS_PNG, PREPARE_JSON, ROC_PR_PNG, THRESHOLD_JSON, THRESHOLD_PNG, TIMELINE_PNG,
    TRAIN_JSON, Run,
)
from lstm_rare_event.scoring.figure import (
    EPISODE_MARGIN, figure_breaks, input_rows, judged_breaks, plot_episode, plot_scores, read_scores, scored_episodes,
    windows,
)
from lstm_rare_event.scoring.state import read_adoptions
from lstm_rare_event.tables import format_table

# Episodes listed in the report's table of the latest alarms (the most recent first).
MAX_EPISODE_ROWS = 20


# -- the HTML report ------------------------------------------------------------------------

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1050px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 2em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f0f0f0; text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0; }
.verdict { background: #fff8e1; border-left: 4px solid #f0a000; padding: 0.6em 1em; }
.warning { color: #a00000; } .muted { color: #777; font-size: 0.85em; }
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _pre(text: str) -> str:
    return f"<pre>{_esc(text)}</pre>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _table(rows: list[list], header: bool = True) -> str:
    out = ["<table>"]
    for i, row in enumerate(rows):
        tag = "th" if header and i == 0 else "td"
        out.append("<tr>" + "".join(f"<{tag}>{_esc(cell)}</{tag}>" for cell in row) + "</tr>")
    return "".join(out) + "</table>"


def _options_rows(options: dict) -> list[list]:
    def shown(value):
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return "-" if value is None else value

    return [["option", "value"], *[[name, shown(value)] for name, value in options.items()]]


def _check_out(out: Path, run: Run) -> None:
    if out.resolve().is_relative_to(run.path.resolve()):
        raise UserError(f"{out}: --out is inside the run directory {run.path}; write the report elsewhere")
    if out.exists() and out.is_dir():
        raise UserError(f"{out}: is a folder; --out needs a file name such as report.html")


def build_report(run_dir, out_path, scores_csv=None, allow_pickle: bool = False, inputs=None, state=None) -> dict:
    """Write the HTML report of ``run_dir`` (and ``scores_csv``) to ``out_path`` atomically;
    return what it contains: {"sections": [...], "figures": n, "episodes": n or None, "breaks":
    the scored period's breaks judged (a CSV written with --keep-labels) or None}.
    ``allow_pickle``: describe a plug-in detector saved with pickle (loading it runs its code).
    ``inputs``: the files ``scores_csv`` was scored from (paths or patterns): a figure per
    latest episode with its top sensors' values. ``state``: the score calls' --state, whose
    adoption records draw each run's threshold over the windows it scored (a nightly swap)."""
    from lstm_rare_event.steps import evaluate as evaluate_step
    from lstm_rare_event.steps import inspect as inspect_step
    from lstm_rare_event.steps import prepare as prepare_step
    from lstm_rare_event.steps import threshold as threshold_step

    run, out = Run(run_dir), Path(out_path)
    _check_out(out, run)
    if inputs and scores_csv is None:
        raise UserError("--input draws the episodes of --scores: give the scores CSV too")
    if state is not None and scores_csv is None:
        raise UserError("--state draws the thresholds of --scores' runs: give the scores CSV too")
    adopted = read_adoptions(Path(state)) if state is not None else ()
    body, sections, figures = [], [], 0
    verdict_html = ""
    with run.reading():
        info = run.json("prepare", PREPARE_JSON)
        offset = info.get("utc_offset_seconds")

        def figure(step: str, name: str, alt: str) -> str:
            nonlocal figures
            if name not in run.files_of(step):
                return ""
            run.check(step, [name])
            figures += 1
            return _img(run.path / name, alt)

        # The data.
        inp = info["input"]
        data_rows = [["input", inp.get("path")], ["rows", f"{inp.get('rows', 0):,}"], ["breaks", inp.get("breaks")],
                     ["sensors (features)", info.get("n_features")],
                     ["cadence", f"{info.get('interval_minutes'):g} minutes"],
                     ["time gaps (restarts after downtime)", info.get("time_gaps")],
                     ["windows", f"{info.get('windows', 0):,} of {info.get('lookback')} rows"]]
        if offset is not None:
            data_rows.append(["time zone of the data", plots.offset_text(offset)])
        body.append("<h2>Data</h2>" + _table(data_rows, header=False) + "<p>Splits:</p>"
                    + _table(prepare_step.summary_rows(info)))
        sections.append("data")

        # Options.
        opts = ["<h2>Options</h2><p>prepare:</p>" + _table(_options_rows(info.get("options", {})))]
        train = run.json("train", TRAIN_JSON) if run.has("train") and TRAIN_JSON in run.files_of("train") else None
        if train is not None:
            opts.append(f"<p>train ({_esc(train['detector'].get('detector'))}):</p>"
                        + _table(_options_rows(train["detector"].get("options") or {"(none)": "-"})))
        chosen = run.json("threshold", THRESHOLD_JSON) if run.has("threshold") else None
        if chosen is not None:
            opts.append("<p>threshold:</p>" + _table(_options_rows(
                {"rule": chosen["rule"], **{f"--{k}": v for k, v in (chosen.get("params") or {}).items()},
                 "merge (minutes)": chosen.get("merge_minutes"), "horizon (minutes)": chosen.get("horizon_minutes")})))
        body.append("".join(opts))
        sections.append("options")

        # The detector.
        if train is not None:
            _, text = inspect_step.inspect_run(run.path, allow_pickle)
            body.append("<h2>Detector</h2>" + _pre(text) + figure("train", LOSS_PNG, "training and validation loss"))
            sections.append("detector")

        # The threshold.
        if chosen is not None:
            warning = f'<p class="warning">{_esc(chosen["warning"])}</p>' if chosen.get("warning") else ""
            body.append("<h2>Threshold (validation split)</h2>" + warning + _pre(threshold_step.threshold_text(chosen))
                        + figure("threshold", THRESHOLD_PNG, "threshold: precision, recall and false alarms per day"))
            sections.append("threshold")

        # The evaluation and verdict.
        if run.has("evaluate"):
            report = run.json("evaluate", EVALUATE_JSON)
            lines = (report.get("verdict") or {}).get("lines") or []
            if lines:
                verdict_html = '<div class="verdict"><strong>Verdict.</strong> ' + "<br>".join(
                    f'<span class="warning">{_esc(line)}</span>' if line.startswith("Warning") else _esc(line)
                    for line in lines) + "</div>"
            body.append("<h2>Evaluation (test split)</h2>" + verdict_html
                        + figure("evaluate", TIMELINE_PNG, "test scores, alarm episodes and breaks")
                        + _pre(evaluate_step.evaluate_text(report))
                        + figure("evaluate", ROC_PR_PNG, "ROC and precision-recall with the operating point")
                        + figure("evaluate", HISTOGRAM_PNG, "score distributions by class"))
            sections.append("evaluation")
        threshold_value = chosen["value"] if chosen is not None else None
        # The episodes are the scores CSV's own; the merge gap they were numbered with, for the
        # text; the rule judges the breaks of a CSV written with --keep-labels.
        rule = run.threshold().alarm_rule if chosen is not None else None
        merge = rule.merge_minutes if rule is not None else None
        interval = run.interval_minutes()
        rows_of_input = input_rows(inputs, run.preprocessor()) if inputs else None

    n_episodes = judged = None
    if scores_csv is not None:
        scores = read_scores(scores_csv)
        rows = scored_episodes(scores)
        n_episodes = len(rows)
        judged = judged_breaks(scores, rule, interval) if rule is not None else None
        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / "scores.png"
            plot_scores(scores_csv, png, threshold=threshold_value, rule=rule, interval_minutes=interval,
                        utc_offset_seconds=offset, adopted=adopted)
            img = _img(png, "scored period: scores, alarm episodes, their top sensors and the breaks")
            figures += 1
            if rows_of_input is not None:
                episode_html, drawn = _episode_figures(scores, rows, rows_of_input, threshold_value,
                                                       figure_breaks(judged), offset, Path(tmp), inputs)
                img += episode_html
                figures += drawn
        shift = np.timedelta64(int(offset), "s") if (offset is not None and not scores["zoned"]) else None

        def when(t):
            return str(t + shift if shift is not None else t).replace("T", " ")

        table = [["start", "end", "windows", "peak score", "top sensors"],
                 *[[when(r["start"]), when(r["end"]), r["windows"], f"{r['peak']:.4g}", ", ".join(r["sensors"]) or "-"]
                   for r in reversed(rows[-MAX_EPISODE_ROWS:])]]
        span = (f"{when(scores['time'][0])} to {when(scores['time'][-1])}, {int(windows(scores).sum()):,} windows"
                if len(scores["time"]) else "no windows")
        listing = _table(table) if rows else "<p>No alarm in the scored period.</p>"
        more = f'<p class="muted">The latest {MAX_EPISODE_ROWS} of {len(rows)} episodes.</p>' \
            if len(rows) > MAX_EPISODE_ROWS else ""
        body.insert(0, f"<h2>Latest alarms</h2><p>{_esc(Path(scores_csv).name)}: {_esc(span)}; "
                       f"{len(rows)} alarm episodes"
                       + (f" (flagged windows merged when less than {merge:g} min apart)" if merge is not None else "")
                       + ", the most recent first.</p>" + listing + more + _breaks_html(scores, rule, judged) + img)
        sections.insert(0, "alarms")

    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    title = f"lstm-rare-event report: {run.path.name}"
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{_esc(title)}</h1><p class=\"muted\">Run {_esc(run.path.resolve())}; written {_esc(stamp)} by "
            f"lstm-rare-event {_esc(__version__)}.</p>"
            + (verdict_html if verdict_html and scores_csv is not None else "")
            + "".join(body) + "</body></html>\n")
    atomic_write_text(out, page)
    log.info(f"report: {', '.join(sections)}; {figures} figures -> {out}")
    return {"out": str(out), "sections": sections, "figures": figures, "episodes": n_episodes,
            "breaks": None if judged is None else to_jsonable({k: v for k, v in judged.items() if k in BREAK_FIGURES})}


#: what the report and its summary say of the scored period's breaks (judged_breaks)
BREAK_FIGURES = ("n_breaks", "warned", "missed", "horizon_minutes", "warned_share", "warned_share_chance",
                 "alarm_on_share", "mean_lead_minutes", "false_episodes_per_day", "days", "breaks")


def _share(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.0%}"


def _breaks_html(scores: dict, rule, judged: dict | None) -> str:
    """The scored period's breaks warned and missed beside chance, or why there are none."""
    if scores["y"] is None:
        return ('<p class="muted">The scores have no y column: the breaks are not shown (score the input with '
                "--keep-labels to keep its labels).</p>")
    if judged is None:
        why = "the run has no threshold" if rule is None else "the run's threshold.json records no warning horizon"
        return f'<p class="muted">The breaks are not judged: {_esc(why)}.</p>'
    lead = judged["mean_lead_minutes"]
    return ("<p>Breaks in the scored period: " + _esc(
        f"{judged['n_breaks']}; warned {judged['warned']} (an alarm episode started at most "
        f"{judged['horizon_minutes']:g} min before), missed {judged['missed']}"
        + (f"; mean lead {lead:.0f} min" if np.isfinite(lead) else "") + ".") + "</p>"
        + _table([["breaks warned", "by chance (the same alarms shifted in time)", "alarm on (share of windows)",
                   "false alarm episodes per day"],
                  [_share(judged["warned_share"]), _share(judged["warned_share_chance"]),
                   f"{judged['alarm_on_share']:.1%}" if np.isfinite(judged["alarm_on_share"]) else "n/a",
                   f"{judged['false_episodes_per_day']:.2g} over {judged['days']:.2g} days"
                   if np.isfinite(judged["false_episodes_per_day"]) else "n/a"]]))


#: episodes drawn up close with the input's values (the latest ones)
MAX_EPISODE_FIGURES = 6


def _episode_figures(scores: dict, rows: list[dict], rows_of_input, threshold, breaks, offset, tmp: Path,
                     inputs) -> tuple[str, int]:
    """The figures of the latest episodes, their top sensors' values from the scored input."""
    parts, drawn = [], 0
    hours = EPISODE_MARGIN / np.timedelta64(1, "h")
    for episode in reversed(rows[-MAX_EPISODE_FIGURES:]):
        number = episode["number"]
        png = tmp / f"episode-{number}.png"
        title = f"Alarm episode {number}: top sensors {', '.join(episode['sensors']) or '(none named)'}, " \
                f"{hours:g} h either side"
        if plot_episode(scores, episode, rows_of_input, png, threshold=threshold, breaks=breaks,
                               utc_offset_seconds=offset, title=title) is None:
            parts.append(f'<p class="muted">Episode {number}: {_esc(" ".join(map(str, inputs)))} has no row within '
                         f"{hours:g} h of it.</p>")
            continue
        parts.append(_img(png, f"alarm episode {number}: its top sensors, the score and the threshold"))
        drawn += 1
    return "".join(parts), drawn


def report_summary(result: dict) -> str:
    return format_table([["report", result["out"]], ["sections", ", ".join(result["sections"])],
                         ["figures", result["figures"]],
                         *([["alarm episodes in the scores", result["episodes"]]] if result["episodes"] is not None
                           else []),
                         *(_breaks_rows(result["breaks"]) if result.get("breaks") else [])])


def _breaks_rows(judged: dict) -> list[list]:
    """The scored period's breaks for the summary a nightly cron mails."""
    return [["breaks warned", f"{judged['warned']} of {judged['n_breaks']} (episode started <= "
                              f"{judged['horizon_minutes']:g} min before)"],
            ["share warned / by chance", f"{_share(judged['warned_share'])} / {_share(judged['warned_share_chance'])}"],
            ["alarm on (share of windows)", _share(judged["alarm_on_share"])]]


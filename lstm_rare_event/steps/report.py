"""The ``report`` step: one self-contained HTML file about a run, for a browser or a mail.

Everything is inside the file: the figures are PNG images embedded as base64 ``data:`` URIs,
the style is inline, and nothing is fetched from the network. Sections appear for the steps
the run has done: the data (prepare.json), the options, the detector (``inspect``), the
threshold, the evaluation and its verdict, and, given ``score``'s CSV, the latest alarms.

Also :func:`plot_scores`, the figure of a scored period drawn from ``scores.csv``.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import tempfile
from pathlib import Path

import numpy as np

from lstm_rare_event import __version__, log
from lstm_rare_event.alarms import episodes as episodes_mod
from lstm_rare_event.alarms import plots
from lstm_rare_event.alarms.episodes import DEFAULT_MERGE_MINUTES
from lstm_rare_event.alarms.sensors import episode_sensors
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import atomic_write_text
from lstm_rare_event.run import (
    EVALUATE_JSON, HISTOGRAM_PNG, LOSS_PNG, PREPARE_JSON, ROC_PR_PNG, THRESHOLD_JSON, THRESHOLD_PNG, TIMELINE_PNG,
    TRAIN_JSON, Run,
)
from lstm_rare_event.tables import format_table

# Episodes listed in the report's table of the latest alarms (the most recent first).
MAX_EPISODE_ROWS = 20


# -- the scores figure ----------------------------------------------------------------------

def read_scores(scores_csv) -> dict:
    """``score``'s CSV as arrays: time (datetime64[s], the data's wall-clock time), score, flag,
    and per window its top sensors with their shares (lists, empty for detectors without any)."""
    import pandas as pd

    path = Path(scores_csv)
    if not path.is_file():
        raise UserError(f"{path}: file not found (expected the CSV written by `lstm-rare-event score`)")
    try:
        frame = pd.read_csv(path, dtype={"time": str})
    except Exception as exc:  # noqa: BLE001 - one line for any unreadable file
        raise UserError(f"{path}: cannot be read as a scores CSV ({type(exc).__name__}: {exc})") from None
    missing = [c for c in ("time", "score", "flag") if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; expected the CSV written by "
                        "`lstm-rare-event score`")
    try:
        parsed = pd.to_datetime(frame["time"].str.strip(), format="ISO8601", utc=False)
    except (ValueError, TypeError):  # offsets that change (daylight saving): each row's wall-clock time
        parsed = pd.to_datetime(frame["time"].str.strip().str.replace(r"(Z|[+-]\d{2}:?\d{2})$", "", regex=True),
                                format="ISO8601")
    zoned = getattr(parsed.dt, "tz", None) is not None
    if zoned:
        parsed = parsed.dt.tz_localize(None)  # the wall-clock time as written: the data's own zone
    sensors = sorted(int(c.split("_")[1]) for c in frame.columns if c.startswith("sensor_") and c[7:].isdigit())
    top = [[(str(s), float(w)) for s, w in zip(row[0::2], row[1::2]) if isinstance(s, str) and s]
           for row in frame[[f"{k}_{i}" for i in sensors for k in ("sensor", "share")]].itertuples(index=False)] \
        if sensors else [[] for _ in range(len(frame))]
    opened = frame["opened"].to_numpy().astype(bool) if "opened" in frame.columns else None
    return {"time": parsed.to_numpy().astype("datetime64[s]"), "score": frame["score"].to_numpy(dtype=float),
            "flag": frame["flag"].to_numpy().astype(bool), "opened": opened, "top": top, "zoned": zoned}


def scored_episodes(scores: dict, merge_minutes: float = DEFAULT_MERGE_MINUTES) -> list[dict]:
    """The alarm episodes of a scores CSV, in time order: start, end, windows, peak score and
    the top sensors the alert named (:func:`~lstm_rare_event.alarms.sensors.episode_sensors`:
    those of the window that opened it, as the CSV's ``opened`` column marks it)."""
    ep = episodes_mod.find_episodes(scores["time"], scores["flag"], merge_minutes)
    opened = ep.opened if scores.get("opened") is None else scores["opened"]
    named = episode_sensors(ep.id + 1, opened, scores["top"])
    rows = []
    for k in range(len(ep)):
        members = np.flatnonzero(ep.id == k)
        rows.append({"start": ep.start[k], "end": ep.end[k], "windows": int(members.size),
                     "peak": float(scores["score"][members].max()),
                     "sensors": [name for name, _ in named[k + 1]]})
    return rows


def plot_scores(scores_csv, png, *, threshold: float | None = None, merge_minutes: float = DEFAULT_MERGE_MINUTES,
                utc_offset_seconds: int | None = None, title: str = ""):
    """The figure of a scored period from ``score``'s CSV: scores, threshold, alarm episodes and
    the top sensors of each. Times written with a UTC offset are drawn as written (the data's
    own time zone); times without one are shifted by ``utc_offset_seconds`` when given (a
    run's ``prepare.json`` ``utc_offset_seconds``). Returns the Figure."""
    scores = read_scores(scores_csv)
    rows = scored_episodes(scores, merge_minutes)
    flagged = scores["score"][scores["flag"]]
    return plots.score_figure(scores["time"], scores["score"], threshold, png,
                              episodes=[(r["start"], r["end"]) for r in rows],
                              episode_sensors=[r["sensors"] for r in rows],
                              title=title or f"Scored period: {len(rows)} alarm episodes, {flagged.size:,} of "
                                             f"{len(scores['score']):,} windows flagged",
                              utc_offset_seconds=None if scores["zoned"] else utc_offset_seconds)


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


def build_report(run_dir, out_path, scores_csv=None, allow_pickle: bool = False) -> dict:
    """Write the HTML report of ``run_dir`` (and ``scores_csv``) to ``out_path`` atomically;
    return what it contains: {"sections": [...], "figures": n, "episodes": n or None}.
    ``allow_pickle``: describe a plug-in detector saved with pickle (loading it runs its code)."""
    from lstm_rare_event.steps import evaluate as evaluate_step
    from lstm_rare_event.steps import inspect as inspect_step
    from lstm_rare_event.steps import prepare as prepare_step
    from lstm_rare_event.steps import threshold as threshold_step

    run, out = Run(run_dir), Path(out_path)
    _check_out(out, run)
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
        merge = (chosen or {}).get("merge_minutes") or DEFAULT_MERGE_MINUTES

    n_episodes = None
    if scores_csv is not None:
        scores = read_scores(scores_csv)
        rows = scored_episodes(scores, merge)
        n_episodes = len(rows)
        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / "scores.png"
            plot_scores(scores_csv, png, threshold=threshold_value, merge_minutes=merge, utc_offset_seconds=offset)
            img = _img(png, "scored period: scores, alarm episodes and their top sensors")
            figures += 1
        shift = np.timedelta64(int(offset), "s") if (offset is not None and not scores["zoned"]) else None

        def when(t):
            return str(t + shift if shift is not None else t).replace("T", " ")

        table = [["start", "end", "windows", "peak score", "top sensors"],
                 *[[when(r["start"]), when(r["end"]), r["windows"], f"{r['peak']:.4g}", ", ".join(r["sensors"]) or "-"]
                   for r in reversed(rows[-MAX_EPISODE_ROWS:])]]
        span = (f"{when(scores['time'][0])} to {when(scores['time'][-1])}, {len(scores['time']):,} windows"
                if len(scores["time"]) else "no windows")
        listing = _table(table) if rows else "<p>No alarm in the scored period.</p>"
        more = f'<p class="muted">The latest {MAX_EPISODE_ROWS} of {len(rows)} episodes.</p>' \
            if len(rows) > MAX_EPISODE_ROWS else ""
        body.insert(0, f"<h2>Latest alarms</h2><p>{_esc(Path(scores_csv).name)}: {_esc(span)}; "
                       f"{len(rows)} alarm episodes (flagged windows merged when less than {merge:g} min apart), "
                       "the most recent first.</p>" + listing + more + img)
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
    return {"out": str(out), "sections": sections, "figures": figures, "episodes": n_episodes}


def report_summary(result: dict) -> str:
    return format_table([["report", result["out"]], ["sections", ", ".join(result["sections"])],
                         ["figures", result["figures"]],
                         *([["alarm episodes in the scores", result["episodes"]]] if result["episodes"] is not None
                           else [])])


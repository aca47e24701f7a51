"""One ``score`` call: an input scored in batch (the whole output written atomically) or
statefully (``--state``: only the rows new since the last call, appended), or several inputs
with the run loaded once.

- Batch (``score RUN INPUT --out scores.csv [--history PREV.csv]``): one Stream over the file,
  after the history's rows as context; the output is written atomically.
- Stateful (``--state STATE``): the Carry is saved in STATE between calls (:mod:`.state`), under
  an exclusive lock beside it (``STATE.lock``). New windows are appended to ``--out``. Before
  the append, the state records the file appended to and its length (rewritten only when they
  are not what the last call recorded: a new state, another ``--out``); after it, the new
  length. A call killed between the append and the state write is undone by the next call,
  which cuts that file back to the recorded length, whatever its own ``--out``, and scores the
  same rows again. The call's alert events are told (printed, handed to the sinks) after the
  append and before the state write: a call killed between them tells again, with the same
  event ids, rather than never.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from lstm_rare_event import log
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import atomic_file, atomic_write_text, dumps
from lstm_rare_event.preprocess.preprocessor import no_window_line, no_window_summary
from lstm_rare_event.preprocess.csv import Buffer
from lstm_rare_event.preprocess.inputs import Inputs, MissingInput, expand
from lstm_rare_event.run import THRESHOLD_JSON, _flock
from lstm_rare_event.scoring.engine import ScoreOptions, Scorer, Stream, feed_file, load_scorer, seed
from lstm_rare_event.scoring.output import (
    STDIO, append_frames, check_output, open_output, output_name, restore_output, to_csv,
)
from lstm_rare_event.scoring.state import read_state, remembered, state_json, time_or_none


def checkpoint(label: str) -> None:
    """Between writing the output and writing the state: a hook for fault-injection tests."""


def score(run_dir, input_path, out_path, options: ScoreOptions = ScoreOptions(), history=None,
          state_path=None, scorer: Scorer | None = None, read=None) -> dict:
    """Score the windows of ``input_path`` (a path, a glob, ``-`` for standard input, or a list of
    these: read as one series in time order, :func:`~lstm_rare_event.preprocess.inputs.expand`)
    with the run in ``run_dir`` and write them as CSV to ``out_path`` (``-``: standard output);
    returns a summary, with the alert events the call told.

    ``history``: a CSV whose rows come before the input's, used only as context (detrending
    baselines, the first windows' earlier rows). ``state_path``: score only what is new since
    the last call with this state, append it to ``out_path``, and save the state again.
    ``scorer``: the run already loaded (:func:`score_many` loads it once for several inputs).
    ``read``: with ``state_path``, what the call reads instead of INPUT's files (``score
    --follow``, :mod:`.follow`): ``read(stream)`` returns the output frames of the new rows and
    the one-line messages of the INPUTs missing.
    """
    arguments = [str(p) for p in input_path] if isinstance(input_path, (list, tuple)) else [str(input_path)]
    input_path = " ".join(arguments)
    to_stdout = str(out_path) == STDIO
    # INPUT is checked file by file once the arguments are expanded (_check_sources).
    check_output(None if to_stdout else out_path, None, run_dir, history, state_path, options.plot)
    if not to_stdout:
        out_path = Path(out_path)
        if state_path is not None and Path(state_path).resolve() == out_path.resolve():
            raise UserError(f"{state_path}: --state and --out are the same file")
    elif options.plot is not None:
        raise UserError("--plot draws the scores written to --out; give --out a file, not -")
    if scorer is None:
        scorer = load_scorer(run_dir, options.engine, options.wait, options.allow_pickle,
                             None if state_path is None else remembered(state_path))
    given, run_dir = run_dir, scorer.run  # the run loaded: a link (current) is not followed again
    stream = Stream(scorer, options, run=str(run_dir))
    if state_path is None:
        inputs = expand(arguments, stream.sep, stream.decimal, stream.names)
        _check_sources(out_path, inputs, run_dir, to_stdout, None, options.plot)
        summary = _batch(stream, inputs, out_path, to_stdout, options, history)
        _tell(stream, run_dir, options, None)
    else:
        summary = _stateful(stream, run_dir, arguments, out_path, to_stdout, options, history, Path(state_path),
                            read)
    result = {**_summary(stream, scorer, given, input_path, out_path, options, state_path is not None), **summary,
              **stream.watch.summary()}
    if options.plot is not None:
        from lstm_rare_event.scoring.figure import plot_scores

        plot_scores(out_path, options.plot, rule=scorer.rule, interval_minutes=scorer.preprocessor.interval_minutes,
                    utc_offset_seconds=scorer.utc_offset_seconds, adopted=stream.carry.adopted)
        result["plot"] = str(options.plot)
    return result



def score_many(run_dir, inputs, out_dir, options: ScoreOptions = ScoreOptions(), history=None,
               state_path=None, on_done=None) -> dict:
    """Score several inputs with one run, loaded once: each input to ``out_dir/<stem>.scores.csv``
    (written atomically), byte for byte what :func:`score` writes for it alone.

    Every input is scored even when one is bad: a bad input (a :class:`UserError`) is recorded
    in ``failed`` with its message and the next one is scored; the caller decides the exit
    code. Two inputs with the same output name, stdin, and ``history``/``state_path`` or a
    plot with several inputs are refused before anything is read. ``on_done(summary_or_failure)``
    is called after each input (the CLI prints its line there)."""
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise UserError("no INPUT to score")
    if any(str(p) == STDIO for p in inputs):
        raise UserError("--out-dir names each output after its input; stdin (-) has no name: use --out")
    if len(inputs) > 1:
        for what, given in (("--history", history), ("--state", state_path), ("--plot", options.plot)):
            if given is not None:
                raise UserError(f"{what} applies to a single INPUT; {len(inputs)} were given")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: --out-dir is a file, not a folder")
    seen: dict[str, Path] = {}
    for path in inputs:
        name = output_name(path)
        if name in seen:
            raise UserError(f"{seen[name]} and {path} would both write {out_dir / name}; "
                            "rename one, or score them in separate calls")
        seen[name] = path
    for name, path in seen.items():
        check_output(out_dir / name, path, run_dir)
    scorer = load_scorer(run_dir, options.engine, options.wait, options.allow_pickle)
    done, failed = [], []
    for name, path in seen.items():
        try:
            result = score(run_dir, path, out_dir / name, options, history=history, state_path=state_path,
                           scorer=scorer)
        except UserError as exc:
            if exc.exit_code != UserError.exit_code:
                raise  # not the input's fault (a busy state): stop as a single call would
            message = str(exc)
            result = {"input": str(path), "error": message if message.startswith(str(path))
                      else f"{path}: {message}"}
            failed.append(result)
        else:
            done.append(result)
        if on_done is not None:
            on_done(result)
    opened = [{"input": s["input"], **episode} for s in done for episode in s["episodes_opened"]]
    return {"run_dir": str(run_dir), "out_dir": str(out_dir), "inputs": done, "failed": failed,
            "episodes_opened": opened}


def _check_sources(out_path, inputs: Inputs, run_dir, to_stdout: bool, state_path, plot) -> None:
    """No file the call writes is one of the INPUT files."""
    for source in inputs.sources:
        if not isinstance(source, Buffer):
            check_output(None if to_stdout else out_path, source, run_dir, None, state_path, plot)


def _present(arguments: list[str], stream: Stream) -> tuple[Inputs | None, list[str]]:
    """The INPUTs that are there, in time order, and a line for each one that is not (a day
    file before its first row): for a stateful call, a data condition rather than an error."""
    missing: list[str] = []
    return expand(arguments, stream.sep, stream.decimal, stream.names, missing=missing), missing


def feed_inputs(stream: Stream, inputs: Inputs | None, chunk_rows: int):
    """The output frames of every input file in turn (see :func:`feed_file`)."""
    for source in () if inputs is None else inputs.sources:
        yield from feed_file(stream, source, chunk_rows)


def _batch(stream: Stream, source: Inputs, out_path, to_stdout: bool, options: ScoreOptions, history) -> dict:
    if history is not None:
        seed(stream, Path(history), options.chunk_rows)
    if to_stdout:
        _write_all(stream, source, sys.stdout, options, history is None)
    else:
        with atomic_file(out_path) as handle:
            _write_all(stream, source, handle, options, history is None)
    return {}


def _write_all(stream: Stream, source, handle, options: ScoreOptions, need_windows: bool) -> None:
    """The whole output of ``source``; without history, an input too short for any window is
    an error (nothing is written)."""
    handle.write(stream.header())
    for frame in feed_inputs(stream, source, options.chunk_rows):
        handle.write(to_csv(frame))
    pre = stream.pre
    if need_windows and stream.new_rows + stream.skipped < pre.lookback:
        raise UserError(f"{source}: {stream.new_rows} data rows, fewer than one window of {pre.lookback} rows "
                        "(the run's lookback)")
    if need_windows and stream.windows == 0:
        raise UserError(f"{source}: no window to score: no {pre.lookback} consecutive rows "
                        f"without a time gap (a step longer than {pre.max_gap_ / np.timedelta64(1, 's'):g} seconds)")


def _stateful(stream: Stream, run_dir, input_path, out_path, to_stdout: bool, options: ScoreOptions, history,
              state_path: Path, read=None) -> dict:
    lock = state_path.with_name(state_path.name + ".lock")
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{state_path.parent}: cannot create the state's folder ({exc.strerror})") from None
    with _flock(lock, options.wait, f"another score call holds the state {state_path.name}"):
        record = None
        if state_path.exists():
            stream.carry, record, stream.watch = read_state(state_path, stream.scorer, run_dir, options)
            restore_output(record, state_path, None if to_stdout else out_path)
        if record is None and history is not None:
            seed(stream, Path(history), options.chunk_rows)
        if read is None:
            inputs, missing = _present(input_path, stream)
            if inputs is not None:
                _check_sources(out_path, inputs, run_dir, to_stdout, state_path, options.plot)
                inputs = inputs.after(stream.carry.last_time)  # files wholly seen are not read again
        out_record = {"path": STDIO} if to_stdout else open_output(out_path)
        if out_record != record:
            # The state before this call, recording the output it appends to and its length
            # now: a call killed after the append is undone by the next, whatever its --out.
            atomic_write_text(state_path, dumps(state_json(stream.carry, stream.scorer, run_dir, out_record,
                                                           stream.watch)))
        # Read only now: a reader thread may take rows in as soon as the frames exist.
        if read is not None:
            frames, missing = read(stream)
        else:
            frames = feed_inputs(stream, inputs, options.chunk_rows)
        stream.watch.inputs(missing)
        if to_stdout:
            if record is None:
                sys.stdout.write(stream.header())
            for frame in frames:
                sys.stdout.write(to_csv(frame))
            sys.stdout.flush()
        else:
            out_record["bytes"] = append_frames(out_path, stream.header(), frames)
        checkpoint("output")
        # Told before the state is saved: a call killed in between tells again (the same event
        # ids) rather than never; what a sink did not take is saved as pending.
        _tell(stream, run_dir, options, state_path)
        atomic_write_text(state_path, dumps(state_json(stream.carry, stream.scorer, run_dir, out_record,
                                                       stream.watch)))
    carry = stream.carry
    open_episode = None
    if stream.scorer.rule.still_open(carry.episode, carry.last_scored):
        open_episode = {"id": carry.episode.number, "start": time_or_none(carry.episode.start),
                        "last_flagged": time_or_none(carry.episode.last)}
    return {"state": str(state_path), "skipped_rows": stream.skipped, "last_scored": time_or_none(carry.last_scored),
            "open_episode": open_episode}



def _tell(stream: Stream, run_dir, options: ScoreOptions, state_path: Path | None) -> None:
    """The call's alerting: an episode the alarm rule no longer lets grow resolved, the data
    conditions updated, each event printed and handed to the sinks, the metrics rewritten."""
    carry, watch = stream.carry, stream.watch
    findings = stream.checks.findings(stream.pre, options.drift_sd)
    watch.finish(stream.scorer.rule.still_open(carry.episode, carry.last_scored), stream.checks, findings,
                 time_or_none(carry.last_time), stream.pre.interval_ / np.timedelta64(60, "s"))
    watch.tell(options.sinks)
    if options.sinks.metrics is not None:
        values = {"last_score": watch.last_score, "threshold": stream.scorer.rule.value,
                  "episode_id": carry.episode.number, "rows_scored_total": carry.rows,
                  "windows_scored_total": carry.windows,
                  "last_row_timestamp_seconds": None if carry.last_time is None else _seconds(carry.last_time),
                  "run_age_seconds": run_age(run_dir)}
        watch.metrics(options.sinks, values, Path(state_path).stem if state_path is not None else "batch")


def _seconds(t) -> int:
    return int(np.datetime64(t, "s").astype(np.int64))


def run_age(run_dir) -> float | None:
    """Seconds since the run's threshold was chosen (its threshold.json written)."""
    try:
        return max(time.time() - (Path(run_dir) / THRESHOLD_JSON).stat().st_mtime, 0.0)
    except OSError:
        return None


def _summary(stream: Stream, scorer: Scorer, run_dir, input_path, out_path, options: ScoreOptions,
             stateful: bool) -> dict:
    findings = stream.checks.findings(stream.pre, options.drift_sd)
    warnings = [{"kind": kind, "sensors": list(f.sensors), "message": f.message} for kind, f in findings.items()]
    coverage = stream.coverage or no_window_summary(np.zeros(0, dtype=np.int8))
    if coverage["windowed"] < coverage["rows"]:
        line, large = no_window_line(coverage, "new rows")
        # Every few minutes from cron, only the told transitions may reach the mail.
        (log.warning if large and not stateful else log.info)(f"{input_path}: {line}")
    summary = {
        "input": str(input_path),
        "output": str(out_path),
        "run_dir": str(run_dir),
        "run": str(scorer.run.resolve()),  # the run that scored, its link (if any) followed
        "detector": scorer.detector.name,
        "sensors": "named per window" if stream._has_sensors else
                   f"none: the {scorer.detector.name} detector uses no sensor",
        "rows": stream.new_rows,
        "windows": stream.windows,
        "alarms": stream.alarms,
        "first_alarm": stream.first_alarm,
        "last_alarm": stream.last_alarm,
        "episodes_opened": stream.opened,
        "merge_minutes": scorer.rule.merge_minutes,
        "threshold": scorer.rule.value,
        "engine": scorer.detector.engine,
        "warnings": warnings,
        "coverage": coverage,
    }
    if options.missing == "hold":
        summary["held_windows"] = stream.held_windows
    return summary



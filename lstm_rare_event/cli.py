"""The ``lstm-rare-event`` command line: parse options, call the library, print.

Exit codes (every command): 0 success; 2 bad input or usage (a one-line message on
stderr); 1 an unexpected internal error; 75 the run directory is busy (try again later).
``score --fail-on-alert`` adds 3.

Why one module of about 800 lines: click's options, help and examples of every command, and
nothing else; each command's body is a few lines over a library function.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import threading
import warnings
from dataclasses import fields
from pathlib import Path

import click

from lstm_rare_event import detectors, log
from lstm_rare_event.version import __version__
from lstm_rare_event.alarms.thresholds import RULES
from lstm_rare_event.alerts.conditions import DEFAULT_CLEAR_MINUTES, DRIFT_CLEAR_SHARE
from lstm_rare_event.alerts.sinks import SinkOptions
from lstm_rare_event.detectors.lstm_ae import DISTRIBUTE, ERROR_MODES, LstmOptions
from lstm_rare_event.detectors.pca import COMBINE, PcaOptions
from lstm_rare_event.detectors.plugin import INPUTS, PluginOptions
from lstm_rare_event.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, UserError, interrupted
from lstm_rare_event.files import atomic_write_text, dumps
from lstm_rare_event.run import DEFAULT_KEEP, DEFAULT_WAIT, EXIT_BUSY, Writer, promote
from lstm_rare_event.preprocess.preprocessor import LABELS, PreprocessOptions
from lstm_rare_event.preprocess.spans import duration_minutes
from lstm_rare_event.steps.backtest import BacktestOptions
from lstm_rare_event.preprocess.split import SPLIT_KINDS, PrepareOptions
from lstm_rare_event.steps.compare import REPLICATES
from lstm_rare_event.scoring.engine import MISSING, ScoreOptions
from lstm_rare_event.alarms.thresholds import DEFAULT_MERGE, ThresholdOptions
from lstm_rare_event.steps.evaluate_scores import REPLICATES as EXPERIMENT_REPLICATES
from lstm_rare_event.steps.threshold import DEFAULT_POOL, PREVIOUS_RATIO
from lstm_rare_event.tables import format_table

EXIT_CODES = """\b
Exit codes:
  0  success
  2  bad input or usage: the message names the file, row or column
  1  unexpected internal error (re-run with --debug for the traceback)
  75 another step holds the run directory's lock past --wait (try again later)
  130, 143  interrupted (Ctrl-C, SIGTERM): nothing is left half-written"""


# Errors of the file system that are the input's or the environment's fault, not a bug: a path
# that cannot be created or written (permissions, a regular file where a folder should be, a
# read-only or full disk). They are one line naming the path, exit 2, whichever step hits them.
ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name) for name in ("EACCES", "EPERM", "ENOTDIR", "EISDIR", "ENOENT", "EEXIST", "ENOSPC",
                                      "EDQUOT", "EROFS", "ENAMETOOLONG", "ELOOP", "EFBIG") if hasattr(errno, name))
# Without a file name these are still the disk's fault (a write() that finds the disk full).
NAMELESS_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG")
                            if hasattr(errno, name))


def environment_error(exc: BaseException) -> str | None:
    """One line for an OSError that the input or the environment caused ("PATH: STRERROR"),
    or None for anything else, which stays an internal error."""
    if not isinstance(exc, OSError) or exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    reason = exc.strerror or os.strerror(exc.errno)
    if exc.filename is None:
        return reason if exc.errno in NAMELESS_ERRNOS else None
    return f"{os.fsdecode(exc.filename)}: {reason}"


def _interrupt(signum, frame):
    """SIGINT as Python's default handler does it, but raised from Python code: CPython 3.11's
    default handler sets an exception without a value, which pandas' C parser drops when it
    arrives inside a read, reporting "Error tokenizing data" instead of the interrupt."""
    raise KeyboardInterrupt


def _terminate(signum, frame):
    raise Terminated


def _log_warning(message, category, filename, lineno, file=None, line=None):
    log.warning(f"{category.__name__}: {message} ({Path(filename).name}:{lineno})")


def command(group, name, example, extra_exit_codes=""):
    """A subcommand with --quiet and --debug, an example and exit codes in its help,
    and user errors turned into one line on stderr and exit code 2.

    Python warnings (NumPy, scikit-learn, matplotlib) are not shown: the messages that matter
    are our own. With --debug they go to the log."""

    def decorate(func):
        @functools.wraps(func)
        def run(*args, quiet, debug, **kwargs):
            log.configure(quiet)
            Writer.last_committed = False  # the interrupt message is about this command's commit
            main_thread = threading.current_thread() is threading.main_thread()
            own_sigint = main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler
            own_sigterm = main_thread and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
            if own_sigint:
                signal.signal(signal.SIGINT, _interrupt)
            if own_sigterm:
                signal.signal(signal.SIGTERM, _terminate)
            try:
                with warnings.catch_warnings():
                    if debug:
                        warnings.simplefilter("default")
                        warnings.showwarning = _log_warning
                    else:
                        warnings.simplefilter("ignore")
                    return func(*args, **kwargs)
            except UserError as exc:
                if debug:
                    raise
                click.echo(f"Error: {exc}", err=True)
                sys.exit(exc.exit_code)
            except Terminated:
                click.echo(interrupted(Writer.last_committed, "Terminated"), err=True)
                sys.exit(EXIT_TERMINATED)
            except KeyboardInterrupt:
                click.echo(interrupted(Writer.last_committed), err=True)
                sys.exit(EXIT_INTERRUPTED)
            except Exception as exc:  # noqa: BLE001 - last resort: no traceback without --debug
                if debug:
                    raise
                line = environment_error(exc)
                if line is not None:
                    click.echo(f"Error: {line}", err=True)
                    sys.exit(UserError.exit_code)
                click.echo(f"Internal error: {type(exc).__name__}: {exc} (re-run with --debug)", err=True)
                sys.exit(1)
            finally:
                if own_sigint and signal.getsignal(signal.SIGINT) is _interrupt:
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                if own_sigterm and signal.getsignal(signal.SIGTERM) is _terminate:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)

        run = click.option("--debug", is_flag=True, help="Show the full traceback on errors.")(run)
        run = click.option("--quiet", "-q", is_flag=True, help="No progress or log lines on stderr.")(run)
        doc = (func.__doc__ or "").rstrip()
        epilog = f"\b\nExample:\n  {example}\n\n{EXIT_CODES}{extra_exit_codes}"
        return group.command(name, help=doc, epilog=epilog)(run)

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lstm-rare-event")
def cli():
    """Predict rare events (such as paper sheet breaks) in multivariate sensor time series.

    \b
    The pipeline, each step reading and writing files in a run directory:
      demo-data   write a synthetic data set with the sheet-break schema
      prepare     read a CSV, shift labels ahead, window, split, scale
      train       fit a detector (LSTM autoencoder, Mahalanobis, PCA, restart) on normal windows
      inspect     show the detector: the network and how small its latent vector is
      threshold   choose the alarm threshold on the validation split
      evaluate    measure alarms on the test split
      evaluate-scores  point-wise F1, FAR, MAR of scored experiments pooled (SKAB's protocol)
      score       flag new data in batch (for cron and Make)
      compare     evaluated runs side by side, with bootstrap intervals
      report      one self-contained HTML file about a run (and its latest scores)
      backtest    walk forward through history: refit, threshold and score fold by fold

    Run `lstm-rare-event COMMAND --help` for each step's options and an example.
    """


@command(cli, "demo-data", "lstm-rare-event demo-data --out demo/demo.csv --rows 6000 --seed 7")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV file to write (its folder is created if missing).")
@click.option("--rows", default=6000, show_default=True, type=int, help="Number of rows (2 minutes apart).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the noise, grades and breaks; the same seed gives the same file.")
def demo_data_command(out_path, rows, seed):
    """Write a synthetic data set with the sheet-break schema (`time, y, x1..x61`).

    Correlated sensors with grade changes, day-scale drift, about 0.7 % breaks with the
    downtime cut out, and a few rows of growing drift in some sensors before each break.
    """
    from lstm_rare_event import synthetic

    written, breaks = synthetic.write_csv(synthetic.spans(rows, seed), out_path)
    log.info(f"demo-data: {written:,} rows, {breaks} breaks -> {out_path}")


def comma_list(ctx, param, value):
    """Click callback: 'a,b,c' -> ('a', 'b', 'c'); empty -> ()."""
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def comma_floats(ctx, param, value):
    if value is None:
        return None
    try:
        return tuple(float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got {value!r}") from None


def wait_option(func):
    return click.option("--wait", default=DEFAULT_WAIT, show_default=True, type=click.FloatRange(min=0),
                        help=f"Seconds to wait for another step that holds the run directory, then exit {EXIT_BUSY}.")(func)


def options(*decorators):
    """Several click options as one decorator, so that commands share their definitions."""

    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


SEP_HELP = ("Column separator of a CSV input: ',', ';', 'tab' (historian exports). Parquet files (.parquet, needs "
            "the [parquet] extra) need none.")
DECIMAL_HELP = "Decimal mark of the numbers: ',' for exports such as --sep ';' --decimal ','."
read_options = options(
    click.option("--sep", default=",", show_default=True, help=SEP_HELP),
    click.option("--decimal", type=click.Choice([".", ","]), default=".", show_default=True, help=DECIMAL_HELP),
)
# score reads new files as prepare read the training file, unless told otherwise.
run_read_options = options(
    click.option("--sep", default=ScoreOptions.sep, help=f"{SEP_HELP}  [default: the run's, as prepare was told]"),
    click.option("--decimal", type=click.Choice([".", ","]), default=ScoreOptions.decimal,
                 help=f"{DECIMAL_HELP}  [default: the run's]"),
)

P = PrepareOptions
preprocess_options = options(
    click.option("--labels", type=click.Choice(LABELS), default=P.labels, show_default=True,
                 help="events: a 1 marks a break (--shift labels the rows before it); intervals: a 1 marks an "
                      "anomalous row, kept as it is (an interval is a run of them), never shifted."),
    click.option("--shift", default=P.shift, show_default=True, type=int,
                 help="Label the SHIFT rows before each break 1 and drop the break row (0: keep labels); "
                      "--labels events only."),
    click.option("--lookback", default=P.lookback, show_default=True, type=int, help="Rows per window."),
    click.option("--drop", default=",".join(P.drop), show_default=True, callback=comma_list,
                 help="Columns left out of the features (categorical by default)."),
    click.option("--features", default=None, callback=comma_list,
                 help="Use exactly these feature columns, comma-separated (overrides --drop)."),
    click.option("--allow-gaps", is_flag=True,
                 help="Let windows span time gaps, indexed as the 2019 recipe does (reproduces its split)."),
    click.option("--max-gap", default=P.max_gap,
                 help="A step between rows longer than this is a time gap (downtime), which no window or "
                      "detrending median spans: a duration (90s, 5min) or a number of cadences  [default: 1.5 "
                      "cadences, and at least the cadence + 1 second (clock jitter: 2-second steps in 1-second "
                      "data)]"),
    click.option("--detrend", default=P.detrend, show_default=True, type=int,
                 help="Subtract each sensor's median over this many past rows, never across a time gap "
                      "(0: off, the recipe)."),
    click.option("--clip", default=P.clip, show_default=True, type=float,
                 help="Limit scaled values to +-CLIP standard deviations (0: off, the recipe)."),
    click.option("--time-column", default=P.time_column, show_default=True, help="The column of the times."),
    click.option("--label-column", default=P.label_column, show_default=True,
                 help="The 0/1 label column. Without the default column the data is unlabelled: every row "
                      "is normal, and only rules that need no labels choose a threshold."),
    click.option("--time-format", default=P.time_format,
                 help="How times are written when the default reading is wrong: a strftime pattern "
                      "('%d.%m.%Y %H:%M:%S') or 'epoch' (seconds since 1970 UTC)  [default: ISO 8601, "
                      "M/D/YY H:MM or epoch seconds, as the times read]"),
)


@command(cli, "prepare", "lstm-rare-event prepare sheet-break.csv.gz --out run\n"
                         "  lstm-rare-event prepare sheet-break.csv.gz --out recipe-run --split random --seed 123 "
                         "--allow-gaps --detrend 0 --clip 0   # reproduce the 2019 recipe\n"
                         "  lstm-rare-event prepare 'incoming/*.csv' --out runs/2024-03-05T013000 --last 4d "
                         "--fractions 0.75,0.25,0   # nightly")
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to write (created if missing).")
@read_options
@preprocess_options
@click.option("--split", type=click.Choice(SPLIT_KINDS), default=P.split, show_default=True,
              help="time: train/valid/test in time order; random: the recipe's shuffled split (leaks "
                   "between splits through overlapping windows).")
@click.option("--fractions", default=None, callback=comma_floats,
              help="train,valid,test shares; test may be 0 (a retrain that validates on the latest rows)  "
                   "[default: 0.6,0.2,0.2 for time, 0.64,0.16,0.2 for random]")
@click.option("--seed", default=P.seed, show_default=True, type=int, help="Seed of the random split.")
@click.option("--last", default=None,
              help="Keep only the most recent rows, across all INPUTs: a duration (4d, 12h) or a number of rows "
                   "(a nightly retrain over the day files).")
@click.option("--train-rows", default=P.train_rows, type=int,
              help="Fit per experiment: train and validate in the first N rows (split as --fractions' train:valid), "
                   "and judge (test) every later row; its windows may start in the first N rows.")
@wait_option
@click.option("--json", "as_json", is_flag=True, help="Print prepare.json instead of the table.")
def prepare_command(inputs, out_dir, as_json, wait, sep, decimal, **options):
    """Read a sheet-break CSV, shift labels ahead, window, split and scale.

    INPUT is a CSV (plain or .gz; --sep and --decimal for other separators and decimal
    commas) or a Parquet file, with a `time` column, a 0/1 label column `y` and numeric
    sensor columns; - reads standard input. Several INPUTs or a pattern (quoted:
    'incoming/*.csv') are read as one table in the order of their first rows' times, and
    --last 4d reads only the files that hold the last 4 days. Writes train/valid/test
    windows, the fitted preprocessor and prepare.json into --out; nothing is written when the
    input is rejected.
    """
    from lstm_rare_event.steps import prepare

    info = prepare.prepare_run(list(inputs), out_dir, PrepareOptions(**options), sep=sep, decimal=decimal, wait=wait)
    log.info(f"prepared {info['input']['rows']:,} rows -> {info['windows']:,} windows of "
             f"{info['lookback']} x {info['n_features']} into {out_dir}")
    if as_json:
        click.echo(dumps(info), nl=False)
    else:
        click.echo(format_table(prepare.summary_rows(info)))


def architecture_options(func):
    """--arch, --encoder, --decoder and --activation, shared by train and inspect."""
    from lstm_rare_event.detectors.lstm_ae.spec import ACTIVATIONS, DEFAULT_PRESET, PRESETS

    options = [
        click.option("--arch", "preset", type=click.Choice(list(PRESETS)), default=None,
                     help=f"lstm: preset network  [default: {DEFAULT_PRESET}: encoder 32,16, decoder 16,32, relu; "
                          "article-2019-05: encoder 5,16,1, decoder 5,16, relu]"),
        click.option("--encoder", default=None, metavar="UNITS",
                     help="lstm: encoder LSTM sizes, e.g. 32,16; the last one's final output is the latent vector."),
        click.option("--decoder", default=None, metavar="UNITS",
                     help="lstm: decoder LSTM sizes  [default: the preset's, or the --encoder mirrored]"),
        click.option("--activation", type=click.Choice(ACTIVATIONS), default=None,
                     help="lstm: LSTM activation  [default: the preset's]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


L = LstmOptions
lstm_options = options(
    architecture_options,
    click.option("--error", type=click.Choice(ERROR_MODES), default=None,
                 help=f"lstm: mean: squared error over all steps of the window; last: of its last step (the "
                      f"recipe)  [default: {L.error}]"),
    click.option("--epochs", type=int, default=None, help=f"lstm: maximum number of epochs  [default: {L.epochs}]"),
    click.option("--batch-size", type=int, default=None,
                 help=f"lstm: windows per gradient step  [default: {L.batch_size}]"),
    click.option("--learning-rate", type=float, default=None,
                 help=f"lstm: Adam's learning rate  [default: {L.learning_rate}]"),
    click.option("--patience", type=int, default=None,
                 help="lstm: stop after this many epochs without a better validation loss and keep the best "
                      f"weights (0: no early stopping, keep the last)  [default: {L.patience}]"),
    click.option("--seed", type=int, default=None,
                 help=f"lstm: same seed and inputs give the same weights on the same machine  [default: {L.seed}]"),
    click.option("--distribute", type=click.Choice(DISTRIBUTE), default=None,
                 help="lstm: train with tf.distribute: mirrored over this machine's GPUs (or CPU), multi-worker "
                      "over the cluster in TF_CONFIG (only the chief writes)  [default: none]"),
)

PCA = PcaOptions
pca_options = options(
    click.option("--components", type=click.IntRange(min=0), default=None,
                 help=f"pca: principal components T-squared keeps (0: as many as explain --variance)  "
                      f"[default: {PCA.components}]"),
    click.option("--variance", type=float, default=None,
                 help=f"pca: share of the training variance the components explain  [default: {PCA.variance}]"),
    click.option("--combine", type=click.Choice(COMBINE), default=None,
                 help="pca: T-squared / its limit plus Q / its limit (sum, Yue and Qin's combined index), or the "
                      f"larger (max)  [default: {PCA.combine}]"),
    click.option("--confidence", type=float, default=None,
                 help=f"pca: level of the T-squared and Q limits that weigh the two  [default: {PCA.confidence}]"),
)

PL = PluginOptions
plugin_options = options(
    click.option("--plugin-params", default=None, metavar="JSON",
                 help="A plug-in's constructor arguments as a JSON object, e.g. '{\"n_estimators\": 50, "
                      "\"random_state\": 0}'  [default: {}]"),
    click.option("--plugin-input", type=click.Choice(INPUTS), default=None,
                 help="What a plug-in is fed: each window's last row (the labelled row), the window flattened, "
                      f"or the 3-D windows  [default: {PL.plugin_input}]"),
)
PLUGIN_HELP = ("or a plug-in package.module:Class: any class with fit and score_samples (scikit-learn: higher = "
               "normal, negated) or decision_function (PyOD: higher = anomalous), e.g. pyod.models.ecod:ECOD")


def load_pickle_option(func):
    return click.option("--allow-pickle", is_flag=True,
                        help="Load a plug-in detector saved with pickle (train --allow-pickle). Loading a pickle "
                             "runs code from the run directory: only for runs you trust.")(func)


@command(cli, "train", "lstm-rare-event train run\n"
                       "  lstm-rare-event train run --detector mahalanobis --out run-mahalanobis\n"
                       "  lstm-rare-event train recipe-run --arch article --epochs 200 --batch-size 64 "
                       "--learning-rate 1e-4 --patience 0 --error last   # reproduce the 2019 recipe")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--detector", "detector", default=detectors.DEFAULT, show_default=True, metavar="NAME",
              help="lstm: LSTM autoencoder (reconstruction error); mahalanobis: distance of the last row "
                   "from normal training rows; pca: Hotelling's T-squared plus the Q residual of the last row; "
                   f"restart: minutes since the last restart after downtime; {PLUGIN_HELP}.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Write the detector here instead of RUN_DIR (the prepared data is copied along).")
@click.option("--init-from", "init_from", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Start from this run's fit, for detectors that can (lstm: its weights; same network and "
                   "features): a retrain in seconds.")
@lstm_options
@pca_options
@plugin_options
@click.option("--allow-pickle", is_flag=True,
              help="Save a plug-in detector with pickle, the only way to keep its fitted state. Loading it "
                   "runs code, so every step that loads it needs --allow-pickle too.")
@wait_option
@click.option("--json", "as_json", is_flag=True, help="Print train.json instead of the summary.")
def train_command(run_dir, detector, out_dir, init_from, allow_pickle, as_json, wait, **options):
    """Fit a detector on the normal windows that `prepare` wrote.

    Fits on normal training windows (the autoencoder validates on normal validation windows
    for early stopping) and writes the detector (detector/), train.json and, for the
    autoencoder, history.csv and loss.png into RUN_DIR (or --out). An interrupted run
    leaves an earlier detector intact.
    """
    from lstm_rare_event.steps import train

    given = {name: value for name, value in options.items() if value is not None}
    summary = train.train(run_dir, detector, given, out=out_dir, wait=wait, init_from=init_from,
                          allow_pickle=allow_pickle)
    if as_json:
        click.echo(dumps(summary), nl=False)
    else:
        click.echo(format_table(train.summary_rows(summary, out_dir or run_dir)))


@command(cli, "inspect", "lstm-rare-event inspect run\n"
                         "  lstm-rare-event inspect --arch article-2019-05 --lookback 5 --features 59   "
                         "# the 2019 recipe's earlier network, no run needed")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@architecture_options
@click.option("--lookback", default=None, type=int, help="Rows per window (without RUN_DIR).")
@click.option("--features", default=None, type=int, help="Number of features (without RUN_DIR).")
@load_pickle_option
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def inspect_command(run_dir, lookback, features, allow_pickle, as_json, **spec):
    """Show the run's detector: for the autoencoder every layer, the parameter counts and
    how small the latent vector is; for the others, what their score is.

    Give RUN_DIR for a trained detector, or an architecture with --lookback and --features
    (no model needed). Runs without TensorFlow.
    """
    from lstm_rare_event.steps import inspect

    given = any(v is not None for v in (lookback, features, *spec.values()))
    if run_dir is not None and given:
        raise UserError("give RUN_DIR or an architecture (--arch, --encoder, --decoder, --activation, "
                        "--lookback, --features), not both: a trained model's architecture is fixed")
    if run_dir is not None:
        described, text = inspect.inspect_run(run_dir, allow_pickle)
    elif lookback is None or features is None:
        raise UserError("inspect needs RUN_DIR (a trained detector) or --lookback and --features, "
                        "e.g. --lookback 5 --features 59")
    else:
        described, text = inspect.inspect_architecture(spec, lookback, features)
    click.echo(dumps(described), nl=False) if as_json else click.echo(text)


def engine_option(func):
    return click.option("--engine", type=click.Choice(detectors.engines()), default=None,
                        help="What computes the scores: numpy (no TensorFlow), or for lstm keras (model.keras)  "
                             "[default: the detector's own first engine (Detector.engines)]")(func)


T = ThresholdOptions
threshold_options = options(
    click.option("--rule", type=click.Choice(list(RULES)), default=T.rule, show_default=True,
                 help="alarms-per-day: at most --target false alarm episodes per day on validation (extrapolated "
                      "from the score tail when validation is shorter than 1/--target days); value: a fixed "
                      "--value; max-f: best validation F-beta; recall: highest threshold reaching a validation "
                      "recall --target; median-positive: median score of validation positives; quantile: --factor "
                      "x the --q quantile of normal scores; evt: the score normal windows exceed with probability "
                      "--risk, from a generalized Pareto tail (SPOT). quantile and evt need no labels."),
    click.option("--value", type=float, default=None,
                 help="--rule value: the threshold; warns when it flags over 10% of validation windows"),
    click.option("--beta", type=float, default=None,
                 help="--rule max-f: weight of recall over precision  [default: 1]"),
    click.option("--target", type=float, default=None,
                 help="--rule alarms-per-day: false alarm episodes per day  [default: 1]; "
                      "--rule recall: the recall to reach  [default: 0.5]"),
    click.option("--q", "q", type=float, default=None,
                 help=f"--rule quantile: the quantile of normal scores  [default: {RULES['quantile'].params['q'].default:g}]"),
    click.option("--factor", type=float, default=None,
                 help=f"--rule quantile: times the quantile  [default: {RULES['quantile'].params['factor'].default:g}]"),
    click.option("--risk", type=float, default=None,
                 help=f"--rule evt: the share of normal windows above the threshold  "
                      f"[default: {RULES['evt'].params['risk'].default:g}]"),
    click.option("--on", type=click.Choice(RULES["quantile"].params["on"].choices), default=None,
                 help=f"--rule quantile, evt: the normal scores of this split (fit: train and valid together)  "
                      f"[default: {RULES['quantile'].params['on'].default}]"),
    click.option("--merge", default=None,
                 help="Flagged windows closer than this are one alarm episode: a duration (90s, 30min), rows "
                      f"(15rows) or a bare number of minutes  [default: {DEFAULT_MERGE}, 30 min at a 2-minute "
                      "cadence]"),
    click.option("--horizon", default=None,
                 help="A break is warned when an episode starts at most this long before it: a duration, rows "
                      "or minutes as --merge  [default: the label shift, --shift rows]"),
    click.option("--smooth", type=int, default=T.smooth, show_default=True,
                 help="Alarm on the trailing median of the score over this many windows of the same gap-free "
                      "segment (causal; 0 or 1: off); the rule is chosen on the smoothed scores, and score, "
                      "evaluate and backtest smooth alike. For scores of one row (mahalanobis, pca, lstm --error "
                      "last) on fast data that flickers inside a fault (README: Another plant's data)."),
)
# The options of threshold_options that are parameters of a rule, as the rule registry names them.
RULE_PARAMS = tuple(dict.fromkeys(name for rule in RULES.values() for name in rule.params))


def threshold_from(rule, merge, horizon, smooth, carry=T.carry, **params) -> ThresholdOptions:
    given = {name: v for name, v in params.items() if v is not None}
    return ThresholdOptions(rule=rule, params=given, merge=merge, horizon=horizon, smooth=smooth, carry=carry)


@command(cli, "threshold", "lstm-rare-event threshold run --target 1 --horizon 60\n"
                           "  lstm-rare-event threshold recipe-run --rule value --value 0.3   # reproduce the 2019 "
                           "recipe (on the recipe's prepare and train, see their --help)")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@threshold_options
@engine_option
@load_pickle_option
@wait_option
@click.option("--previous", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="The run whose threshold this one replaces (last night's): warns when the new value is over "
                   f"{PREVIOUS_RATIO:g}x or under {1 / PREVIOUS_RATIO:g}x its value.")
@click.option("--pool", type=click.IntRange(min=1), default=DEFAULT_POOL, show_default=True,
              help="Choose on the validation windows of this many runs: this one's, --previous's and those of the "
                   "runs before it by name in its folder (runs/<date>), each scored by its own run; the rule's budget "
                   "applies to the pooled days. With a day of validation a night, a steadier threshold.")
@click.option("--carry", type=click.FloatRange(0, 1, max_open=True), default=T.carry, show_default=True,
              help="With --previous: the threshold is the geometric mean of the rule's choice and --previous's "
                   "threshold, the latter weighted this much (0: the rule's choice): the nightly threshold moves only "
                   "part of each night's jump, up or down alike, so a retrain that raises it silences fewer days.")
@click.option("--json", "as_json", is_flag=True, help="Print threshold.json instead of the table.")
def threshold_command(run_dir, rule, merge, horizon, smooth, engine, allow_pickle, wait, previous, pool, carry,
                      as_json, **params):
    """Choose the alarm threshold on the validation split.

    A window raises an alarm when its detector score is above the threshold. Writes
    threshold.json (the rule, the value, the episode merge gap and warning horizon, and
    validation metrics) and threshold.png. Both are used by evaluate and score.
    """
    from lstm_rare_event.steps import threshold

    options = threshold_from(rule, merge, horizon, smooth, carry, **params)
    summary = threshold.run_threshold(run_dir, options, engine, wait=wait, allow_pickle=allow_pickle,
                                      previous=previous, pool=pool)
    click.echo(dumps(summary), nl=False) if as_json else click.echo(threshold.threshold_text(summary))


@command(cli, "evaluate", "lstm-rare-event evaluate run\n"
                          "  lstm-rare-event evaluate run --reference run-mahalanobis --json")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--reference", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="A run trained on the same prepared split (train --out): the verdict says whether this "
                   "run's detector ranks breaks better (paired bootstrap interval).")
@engine_option
@load_pickle_option
@wait_option
@click.option("--json", "as_json", is_flag=True, help="Print evaluate.json instead of the tables.")
def evaluate_command(run_dir, reference, engine, allow_pickle, wait, as_json):
    """Measure the alarms of threshold.json on the test split, and say what they mean.

    Per window: confusion matrix, precision, recall, F1, false-positive rate, ROC-AUC
    and PR-AUC. Per break: breaks warned by an alarm episode within the horizon, lead
    time, false alarm episodes per day, and the same at 1 and 5 false episodes per day
    (thresholds chosen on validation). Ends with a verdict: whether the scores rank
    breaks better than chance (bootstrap interval by break event), whether the alarm
    budget held on test (within 1.5x), how many breaks were warned and how early, whether
    the detector beats --reference, and a warning on drift (validation loss over 2x the
    training loss). Writes evaluate.json and three figures.
    """
    from lstm_rare_event.steps import evaluate

    report = evaluate.run_evaluate(run_dir, engine, wait=wait, reference=reference, allow_pickle=allow_pickle)
    click.echo(dumps(report), nl=False) if as_json else click.echo(evaluate.evaluate_text(report))


@command(cli, "score", "lstm-rare-event score run today.csv --out scores.csv --fail-on-alert -q\n"
                       "  lstm-rare-event score run today.csv --state score.state --history yesterday.csv "
                       "--out scores.csv --fail-on-alert -q   # every 2 minutes from cron\n"
                       "  lstm-rare-event score run days/*.csv --out-dir scores --fail-on-alert -q   "
                       "# several files, the run loaded once\n"
                       "  lstm-rare-event score current 'incoming/%Y-%m-%d.csv' --follow --state score.state "
                       "--out scores.csv -q   # resident: each row as it comes",
         extra_exit_codes="\n  3  --fail-on-alert and an alarm episode opened (scores.csv is written); with "
                          "--state, only a\n     call that opens a new episode (an ongoing one is not alerted again)\n"
                          "  2  also: with --out-dir, any INPUT was bad (the good ones are written; 2 wins over 3)\n"
                          "  75 also: another call holds --state's lock past --wait")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("--out-dir", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Write each INPUT's scores to DIR/<INPUT name without .csv/.gz/.parquet>.scores.csv "
                   "(atomically), the run loaded once for all. Two INPUTs with the same name are refused. "
                   "A bad INPUT is reported (one line naming it), the others are still scored, and the "
                   "call exits 2 at the end. Instead of --out; needed for several INPUTs.")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="CSV to write (- for stdout): time, score (smoothed, for a run thresholded with --smooth), flag, "
                   "episode (alarm episode id counting from 1, "
                   "0 when not flagged), opened (1 where the window opened an episode), held (--missing hold), "
                   "then the three sensors with the largest share of the score (sensor_1, share_1, ...) for "
                   "detectors that name sensors. With --state, new windows are appended.")
@click.option("--state", "state_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Score only what is new since the last call with this state file (created if missing): "
                   "rows already seen are skipped, new windows appended to --out, the open alarm episode "
                   "carried over. Locked (STATE.lock) while a call runs.")
@click.option("--follow", "follow_input", is_flag=True,
              help="Stay running and score rows as they are appended to INPUT: a growing file, a day-file "
                   "pattern with strftime fields ('incoming/%Y-%m-%d.csv': the next day's file taken up when "
                   "it appears), or - (a pipe). Each batch of new rows is a --state call (needed): outputs and "
                   "state saved after each, the lock held only meanwhile; RUN (a link such as current) is "
                   "resolved again between batches. SIGTERM stops after the batch (exit 0).")
@click.option("--history", default=None, type=click.Path(dir_okay=False, allow_dash=False, path_type=Path),
              help="One INPUT only. Rows before INPUT (e.g. yesterday's file), used only as context: detrending baselines "
                   "and the first windows' earlier rows; no output rows. With --state, read only when the "
                   "state is created.")
@click.option("--fail-on-alert", is_flag=True, help="Exit with code 3 when an alarm episode opens.")
@click.option("--alert-cmd", default=None, metavar="CMD",
              help="Run CMD (through the shell) once per event: an episode opened or resolved, a data condition "
                   "started or cleared; the event as JSON on its stdin and in LRE_EVENT, LRE_EPISODE, LRE_TIME, "
                   "LRE_SENSORS, LRE_MESSAGE, ... A failure is an error: line and, with --state, retried on the "
                   "next call; all sinks together get --wait seconds.")
@click.option("--alert-log", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Append each event to this file as a JSON line (flushed to disk).")
@click.option("--metrics", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Rewrite this Prometheus textfile (for node_exporter's textfile collector, name it *.prom) on "
                   "every call: last score, threshold, open episode, rows scored, last row time, run age, "
                   "conditions in force.")
@click.option("--clear-after", default=f"{DEFAULT_CLEAR_MINUTES:g}min", show_default=True,
              help="A data condition (drift, stuck sensor, cadence) is told cleared after this long of rows "
                   "without it (a duration: 30min, 2h).")
@click.option("--stale-after", default=ScoreOptions.stale_after,
              help="With --state: the input is told stale (a data condition, cleared by the next new row) when "
                   "its newest row stays the newest this long between calls: a duration (30min, 2h) or rows of "
                   "the run's cadence (15rows); 0: never  [default: 15 rows, 10 minutes at least]")
@click.option("--missing", type=click.Choice(MISSING), default=ScoreOptions.missing, show_default=True,
              help="An empty cell: error (exit 2 naming row and column), or hold the sensor's last value "
                   "and mark the windows with it (held column).")
@click.option("--drift-sd", default=ScoreOptions.drift_sd, show_default=True, type=float,
              help="Warn when a sensor of the new rows lies more than this many training standard deviations "
                   f"from its training mean (after detrending); cleared once all are within {DRIFT_CLEAR_SHARE:g}x it.")
@click.option("--adopt", is_flag=True,
              help="Accept a --state written with another run of the same detector and sensors (after a "
                   "retrain), keeping its rows, last scored time and open episode; the state records the "
                   "adoption (from which run, when). Another detector or other sensors: exit 2.")
@click.option("--time-column", default=ScoreOptions.time_column,
              help="The column of the times  [default: the run's, as prepare was told]")
@click.option("--label-column", default=ScoreOptions.label_column,
              help="The 0/1 label column, optional  [default: the run's]")
@click.option("--time-format", default=ScoreOptions.time_format,
              help="A strftime pattern or 'epoch' for the times  [default: the run's]")
@click.option("--chunk-rows", default=ScoreOptions.chunk_rows, show_default=True, type=click.IntRange(min=1),
              help="Rows read and scored at a time; bounds memory on large inputs, same output.")
@click.option("--plot", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw the scored period (all of --out) with its alarm episodes and their top sensors "
                   "into this PNG.")
@click.option("--all-rows", is_flag=True,
              help="Write a line for every input row: a row that ends no window (the first --lookback - 1 rows, "
                   "rows just after a time gap) gets an empty score and flag 0, for point-wise evaluation "
                   "(evaluate-scores).")
@click.option("--keep-labels", is_flag=True,
              help="Keep the input's label column: a y column with each line's row label, and a line (empty "
                   "score) for each break row, so that `report --scores` shows the breaks warned or missed. "
                   "INPUT must have the label column.")
@run_read_options
@engine_option
@load_pickle_option
@wait_option
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON (on stderr with --out -); with --out-dir, one summary per input "
                   "(inputs) and the bad inputs (failed).")
def score_command(run_dir, inputs, out_dir, out_path, state_path, follow_input, history, fail_on_alert, alert_cmd,
                  alert_log, metrics, clear_after, stale_after, missing, drift_sd, adopt, time_column, label_column,
                  time_format, chunk_rows, plot, all_rows, keep_labels, sep, decimal, engine, allow_pickle, wait, as_json):
    """Flag new data with a trained run, in batch or every few minutes (for cron and Make).

    INPUT (- for stdin) has the training file's columns (`y` is optional; with it, break
    rows are dropped as in prepare). The run's preprocessor, detector and threshold are
    applied as saved; a window is flagged when its score is above the threshold, and flagged
    windows less than the threshold's merge gap apart are one alarm episode. On an error
    nothing is written.

    Events are told once each on stderr: "alert:" when an episode opens (its score, threshold
    and top sensors) and when it is resolved (no flag for the merge gap), "warning:" when a
    data condition (drift, stuck sensor, cadence, missing input) starts and when it clears,
    "error:" when a sink fails. With --quiet only these lines print. With --state the
    conditions and the open episode are carried between calls, so cron mails each change
    once; several INPUTs with --out (yesterday's and today's day files, or a pattern) are
    read in time order, files already scored are skipped, and an INPUT that is not there yet
    is the missing-input condition, not an error.

    Several INPUTs (e.g. a machine's days) with --out-dir DIR: one output per INPUT, the run
    loaded once. Every good INPUT is scored and written even when another is bad; each bad
    one gets an error line naming it, and the call exits 2 at the end. One stderr line per
    INPUT; --fail-on-alert exits 3 when any INPUT opened an episode.

    With --follow (and --state, --out), it stays running and scores each row as it is
    appended (examples/lstm-rare-event-follow.service); a kill and a restart write what an
    uninterrupted run writes. SIGTERM ends it after the batch in progress, exit 0.
    """
    from lstm_rare_event.steps import score

    sinks = SinkOptions(alert_cmd=alert_cmd, alert_log=alert_log, metrics=metrics, timeout=wait)
    options = ScoreOptions(engine=engine, allow_pickle=allow_pickle, chunk_rows=chunk_rows, missing=missing,
                           drift_sd=drift_sd, wait=wait, adopt=adopt, sep=sep, decimal=decimal, plot=plot,
                           time_column=time_column, label_column=label_column, time_format=time_format,
                           all_rows=all_rows, keep_labels=keep_labels, sinks=sinks,
                           clear_minutes=duration_minutes(clear_after, "--clear-after"), stale_after=stale_after)

    def report(result):
        # The episodes and data conditions reach stderr as told events (once each), not here.
        if "error" in result:
            click.echo(f"Error: {result['error']}", err=True)
        else:
            log.info(score.summary_line(result))

    if follow_input and fail_on_alert:
        raise UserError("--fail-on-alert ends a call with exit 3; --follow does not end: "
                        "give --alert-cmd or --alert-log")
    summary = score.run_score(run_dir, inputs, out_path, out_dir, options, history=history, state_path=state_path,
                              on_done=report, follow_input=follow_input)
    if out_dir is None:
        report(summary)
    if as_json:
        click.echo(dumps(summary), nl=False, err=str(out_path) == "-")
    if summary.get("failed"):
        sys.exit(UserError.exit_code)
    if fail_on_alert and summary["episodes_opened"]:
        sys.exit(3)


@command(cli, "evaluate-scores", "lstm-rare-event evaluate-scores runs/0 scores/0.scores.csv runs/1 scores/1.scores.csv "
                                 "--out results.json")
@click.argument("pairs", metavar="RUN SCORES...", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the results as JSON to this file (atomically).")
@click.option("--replicates", default=EXPERIMENT_REPLICATES, show_default=True, type=click.IntRange(min=10),
              help="Bootstrap replicates for the intervals (whole experiments resampled).")
@wait_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of the table.")
def evaluate_scores_command(pairs, out_path, replicates, wait, as_json):
    """Point-wise F1, FAR and MAR of several experiments pooled, as the SKAB benchmark counts.

    Give pairs: a RUN prepared with --train-rows N --labels intervals on one file, and SCORES,
    that whole file scored by the run with `score --all-rows`. Each file's labels are read from
    the file the run was prepared from. Counts the rows from row N on (judged) and, as SKAB's
    leaderboard does, every row of the file; a row without a score is not flagged.
    """
    from lstm_rare_event.steps import evaluate_scores

    if len(pairs) % 2:
        raise UserError(f"evaluate-scores takes RUN SCORES pairs; got {len(pairs)} paths, an odd number")
    report = evaluate_scores.evaluate_scores(list(zip(pairs[::2], pairs[1::2])), replicates, wait=wait)
    if out_path is not None:
        atomic_write_text(out_path, dumps(report))
    click.echo(dumps(report), nl=False) if as_json else click.echo(evaluate_scores.evaluate_scores_text(report))


@command(cli, "status", "lstm-rare-event status run --state state/score.state\n"
                        "  lstm-rare-event status run --state state/score.state --json")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--state", "state_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The --state file of the score calls.")
@wait_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(run_dir, state_path, wait, as_json):
    """Where a scoring job stands: the run and its age, the threshold, the last row scored, the
    open alarm episode, the last alert, the data conditions in force. Reads only."""
    from lstm_rare_event.steps import status

    info = status.status(run_dir, state_path, wait)
    click.echo(dumps(info), nl=False) if as_json else click.echo(status.status_text(info))


@command(cli, "promote", "lstm-rare-event promote runs/2024-03-05T013000 --link current --keep 3   # nightly, after "
                         "threshold")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--link", "link", required=True, type=click.Path(path_type=Path),
              help="The symbolic link that score and status are given (e.g. current); made if missing, replaced "
                   "by one rename if there (never a moment without a run behind it).")
@click.option("--keep", default=DEFAULT_KEEP, show_default=True, type=click.IntRange(min=2),
              help="Run directories to keep beside RUN_DIR, the newest by name (name them by date); the run the "
                   "link pointed to is always kept, and so is one that a command is reading or writing.")
@wait_option
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def promote_command(run_dir, link, keep, wait, as_json):
    """Make RUN_DIR, a complete run (prepared, trained, thresholded), the one the link points to.

    A new link is made under a temporary name and renamed over the old one, so a score call
    through the link loads the old run or the new one, whole. Then older runs beside RUN_DIR
    beyond the newest --keep are removed.
    """
    done = promote(run_dir, link, keep, wait)
    was = f" (was {done['previous']})" if done["previous"] else ""
    log.info(f"{done['link']} -> {done['target']}{was}" +
             "".join(f"; removed {p}" for p in done["removed"]) +
             "".join(f"; kept {p}, in use" for p in done["in_use"]))
    if done["warning"]:
        log.warning(done["warning"])
    if as_json:
        click.echo(dumps(done), nl=False)


@command(cli, "report", "lstm-rare-event report run --out report.html\n"
                       "  lstm-rare-event report run --scores scores.csv --out report.html -q   # nightly, for mail")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write (atomically), outside the run directory.")
@click.option("--scores", "scores_csv", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="A CSV written by `score` with this run: adds the latest alarm episodes, their top sensors "
                   "and a figure of the scored period; with a y column (score --keep-labels), its breaks warned "
                   "or missed beside chance.")
@click.option("--input", "inputs", multiple=True,
              help="The file(s) --scores was scored from (repeat, or a pattern): a figure per latest episode with "
                   "its top sensors' values 2 hours either side. Read as the run reads its files.")
@click.option("--state", "state_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="The --state of the score calls that wrote --scores: across a nightly swap, each run's "
                   "threshold is drawn over the windows it scored.")
@load_pickle_option
@click.option("--json", "as_json", is_flag=True, help="Print what the report contains as JSON.")
def report_command(run_dir, out_path, scores_csv, inputs, state_path, allow_pickle, as_json):
    """Write one self-contained HTML file about a run, to open in a browser or mail from cron.

    The run's data (prepare.json), options, detector, threshold, evaluation and verdict,
    with every figure embedded (no network access needed to view it), and, with --scores,
    the latest alarms. Sections appear for the steps the run has done.

    For the day before (cron, after the nightly retrain): --scores yesterday's scores
    written with --keep-labels judges its breaks with the run's horizon: warned or missed,
    the share warned beside chance and the alarm's on-time share.
    """
    from lstm_rare_event.steps import report

    result = report.build_report(run_dir, out_path, scores_csv, allow_pickle, list(inputs) or None, state_path)
    click.echo(dumps(result), nl=False) if as_json else click.echo(report.report_summary(result))


@command(cli, "compare", "lstm-rare-event compare run run-mahalanobis")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--replicates", default=REPLICATES, show_default=True, type=click.IntRange(min=10),
              help="Bootstrap replicates (break events and normal days resampled).")
@load_pickle_option
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_command(run_dirs, replicates, allow_pickle, as_json):
    """Compare evaluated runs of one prepared split: each detector's ROC-AUC and PR-AUC with
    95% bootstrap intervals by break event, and paired differences.

    Give runs made from one `prepare` (e.g. `train --out` per detector), each evaluated.
    A difference whose interval includes 0 is reported as no difference.
    """
    from lstm_rare_event.steps import compare

    result = compare.compare(list(run_dirs), replicates, allow_pickle=allow_pickle)
    click.echo(dumps(result), nl=False) if as_json else click.echo(compare.compare_text(result))


B = BacktestOptions


@command(cli, "backtest", "lstm-rare-event backtest sheet-break.csv.gz --out bt --detector lstm,mahalanobis,restart "
                          "--horizon 60")
@click.argument("input_csv", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for backtest.json, backtest.csv, the figures and the finished folds.")
@click.option("--detector", "detector_names", default=",".join(B.detectors), show_default=True,
              callback=comma_list,
              help=f"Detectors to walk forward on the same folds: {', '.join(detectors.NAMES)}, {PLUGIN_HELP} "
                   "(refitted every fold, never saved: no pickle).")
@click.option("--start", default=B.start, show_default=True,
              help="The first cut: a share of the rows (40%) or a date (1999-05-12).")
@click.option("--every", default=B.every, show_default=True,
              help="Refit and re-threshold this often: a duration (1d, 12h) or a number of rows.")
@click.option("--train-window", default=B.train_window, show_default=True,
              help="History each fold fits on, before its validation window: a duration, rows, or all.")
@click.option("--valid-window", default=B.valid_window, show_default=True,
              help="History just before each cut that the threshold rule (and early stopping) uses.")
@click.option("--warm-start/--no-warm-start", default=B.warm_start, show_default=True,
              help="Start each fold from the previous fold's fit, for detectors that can (lstm: its weights).")
@click.option("--replicates", default=B.replicates, show_default=True, type=click.IntRange(min=10),
              help="Bootstrap replicates for the intervals (break events and normal days resampled).")
@read_options
@preprocess_options
@lstm_options
@pca_options
@plugin_options
@threshold_options
@wait_option
@click.option("--json", "as_json", is_flag=True, help="Print backtest.json instead of the table.")
def backtest_command(input_csv, out_dir, detector_names, start, every, train_window, valid_window, warm_start,
                     replicates, rule, merge, horizon, smooth, wait, as_json, sep, decimal, **options):
    """Walk forward through a labelled CSV as a retrain-and-score deployment would.

    From --start, every --every: each detector is fitted on --train-window of rows before
    the validation window, the threshold rule is applied to the --valid-window just before
    the cut, and the rows up to the next cut are scored. Reports per fold and pooled:
    ROC-AUC and PR-AUC with bootstrap intervals by break, breaks warned within --horizon,
    false alarm episodes per day against the budget, and paired differences between
    detectors. A killed backtest resumes from its last finished fold when run again with
    the same arguments.
    """
    from lstm_rare_event.steps import backtest

    pre_names = [f.name for f in fields(PreprocessOptions)]
    preprocess = PreprocessOptions(**{k: options.pop(k) for k in pre_names})
    rule_params = {k: options.pop(k) for k in RULE_PARAMS}
    walk = BacktestOptions(start=start, every=every, train_window=train_window, valid_window=valid_window,
                           detectors=detector_names, warm_start=warm_start, replicates=replicates)
    params = detectors.assign_options(detector_names, {k: v for k, v in options.items() if v is not None})
    report = backtest.backtest(input_csv, out_dir, walk, preprocess, params,
                               threshold_from(rule, merge, horizon, smooth, **rule_params), wait=wait, sep=sep,
                               decimal=decimal)
    click.echo(dumps(report), nl=False) if as_json else click.echo(backtest.backtest_text(report))


def main():
    cli(prog_name="lstm-rare-event")

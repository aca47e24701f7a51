"""The ``lstm-rare-event`` command line: parse options, call the library, print.

Exit codes (every command): 0 success; 2 bad input or usage (a one-line message on
stderr); 1 an unexpected internal error. ``score --fail-on-alert`` adds 3.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from lstm_rare_event import __version__, log
from lstm_rare_event.artifacts import dumps
from lstm_rare_event.errors import UserError
from lstm_rare_event.tables import format_table

EXIT_CODES = """\b
Exit codes:
  0  success
  2  bad input or usage: the message names the file, row or column
  1  unexpected internal error (re-run with --debug for the traceback)"""


def command(group, name, example, extra_exit_codes=""):
    """A subcommand with --quiet and --debug, an example and exit codes in its help,
    and user errors turned into one line on stderr and exit code 2."""

    def decorate(func):
        @functools.wraps(func)
        def run(*args, quiet, debug, **kwargs):
            log.configure(quiet)
            try:
                return func(*args, **kwargs)
            except UserError as exc:
                if debug:
                    raise
                click.echo(f"Error: {exc}", err=True)
                sys.exit(exc.exit_code)
            except KeyboardInterrupt:
                click.echo("Interrupted; nothing was written.", err=True)
                sys.exit(130)
            except Exception as exc:  # noqa: BLE001 - last resort: no traceback without --debug
                if debug:
                    raise
                click.echo(f"Internal error: {type(exc).__name__}: {exc} (re-run with --debug)", err=True)
                sys.exit(1)

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
      train       fit an LSTM autoencoder on normal training windows
      inspect     show the network and how small its latent vector is
      threshold   choose the alarm threshold on the validation split
      evaluate    measure alarms on the test split
      score       flag new data in batch (for cron and Make)

    Run `lstm-rare-event COMMAND --help` for each step's options and an example.
    """


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


@command(
    cli,
    "prepare",
    "lstm-rare-event prepare sheet-break.csv.gz --out run --split random --seed 123 --allow-gaps",
)
@click.argument("input_csv", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to write (created if missing).")
@click.option("--shift", default=2, show_default=True, type=int,
              help="Label the SHIFT rows before each break 1 and drop the break row (0: keep labels).")
@click.option("--lookback", default=5, show_default=True, type=int, help="Rows per window.")
@click.option("--drop", default="x28,x61", show_default=True, callback=comma_list,
              help="Columns left out of the features (categorical by default).")
@click.option("--features", default=None, callback=comma_list,
              help="Use exactly these feature columns, comma-separated (overrides --drop).")
@click.option("--allow-gaps", is_flag=True,
              help="Let windows span time gaps, indexed as the 2019 recipe does (reproduces its split).")
@click.option("--detrend", default=0, show_default=True, type=int,
              help="Subtract each sensor's median over this many past rows (0: off).")
@click.option("--split", type=click.Choice(["time", "random"]), default="time", show_default=True,
              help="time: train/valid/test in time order; random: the recipe's shuffled split.")
@click.option("--fractions", default=None, callback=comma_floats,
              help="train,valid,test shares  [default: 0.6,0.2,0.2 for time, 0.64,0.16,0.2 for random]")
@click.option("--seed", default=123, show_default=True, type=int, help="Seed of the random split.")
@click.option("--json", "as_json", is_flag=True, help="Print prepare.json instead of the table.")
def prepare_command(input_csv, out_dir, as_json, **options):
    """Read a sheet-break CSV, shift labels ahead, window, split and scale.

    INPUT is a CSV (plain or .gz) with a `time` column, a 0/1 label column `y` and
    numeric sensor columns. Writes train/valid/test windows, the scaler and
    prepare.json into --out; nothing is written when the input is rejected.
    """
    from lstm_rare_event import prepare

    prepared = prepare.prepare(input_csv, prepare.PrepareOptions(**options))
    prepare.save(prepared, out_dir)
    info = prepared.info
    log.info(f"prepared {info['input']['rows']:,} rows -> {info['windows']:,} windows of "
             f"{info['lookback']} x {info['n_features']} into {out_dir}")
    if as_json:
        click.echo(dumps(info), nl=False)
    else:
        click.echo(format_table(prepare.summary_rows(info)))


def main():
    cli(prog_name="lstm-rare-event")

"""The ``lstm-rare-event`` command line: parse options, call the library, print.

Exit codes (every command): 0 success; 2 bad input or usage (a one-line message on
stderr); 1 an unexpected internal error. ``score --fail-on-alert`` adds 3.
"""

from __future__ import annotations

import functools
import sys

import click

from lstm_rare_event import __version__, log
from lstm_rare_event.errors import UserError

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


def main():
    cli(prog_name="lstm-rare-event")

"""Progress and log lines on stderr, so that stdout carries only results."""

import logging
import sys

LOGGER = logging.getLogger("lstm_rare_event")


class _IsoFormatter(logging.Formatter):
    """``2024-05-01T02:14:00+02:00 message``: local time with its UTC offset, to the second."""

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        from datetime import datetime

        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds")


# On a terminal a person reads the lines as they come; in cron mail and log files each line
# says when it was written.
_TERMINAL = logging.Formatter("%(message)s")
_STAMPED = _IsoFormatter("%(asctime)s %(message)s")


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def configure(quiet: bool = False) -> None:
    """Info lines on stderr; ``quiet`` keeps only warnings and errors."""
    handler = next((h for h in LOGGER.handlers if getattr(h, "_lstm_rare_event", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._lstm_rare_event = True
        LOGGER.addHandler(handler)
        LOGGER.propagate = False
    # Click's CliRunner swaps sys.stderr per invocation; follow it.
    try:
        handler.setStream(sys.stderr)
    except ValueError:  # setStream flushes the old stream, which its owner may have closed
        handler.stream = sys.stderr
    handler.setFormatter(_TERMINAL if _is_terminal(sys.stderr) else _STAMPED)
    LOGGER.setLevel(logging.WARNING if quiet else logging.INFO)


def info(message: str, *args) -> None:
    LOGGER.info(message, *args)


def warning(message: str, *args) -> None:
    LOGGER.warning("warning: " + message, *args)


# Three prefixes a mail filter or an operator can tell apart: an alarm episode opened or
# resolved, a data condition started or cleared, a failure (of a step or of an alert sink).
def alert(message: str, *args) -> None:
    LOGGER.warning("alert: " + message, *args)


def error(message: str, *args) -> None:
    LOGGER.error("error: " + message, *args)

"""Progress and log lines on stderr, so that stdout carries only results."""

import logging
import sys

LOGGER = logging.getLogger("lstm_rare_event")


def configure(quiet: bool = False) -> None:
    """Info lines on stderr; ``quiet`` keeps only warnings and errors."""
    handler = next((h for h in LOGGER.handlers if getattr(h, "_lstm_rare_event", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._lstm_rare_event = True
        LOGGER.addHandler(handler)
        LOGGER.propagate = False
    # Click's CliRunner swaps sys.stderr per invocation; follow it.
    handler.setStream(sys.stderr)
    LOGGER.setLevel(logging.WARNING if quiet else logging.INFO)


def info(message: str, *args) -> None:
    LOGGER.info(message, *args)


def warning(message: str, *args) -> None:
    LOGGER.warning("warning: " + message, *args)

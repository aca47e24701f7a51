"""Progress and log lines on stderr, so that stdout carries only results."""

import logging

LOGGER = logging.getLogger("lstm_rare_event")


def configure(quiet: bool = False) -> None:
    """Info lines on stderr; ``quiet`` keeps only warnings and errors."""
    if not any(getattr(h, "_lstm_rare_event", False) for h in LOGGER.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._lstm_rare_event = True
        LOGGER.addHandler(handler)
        LOGGER.propagate = False
    for handler in LOGGER.handlers:
        # Click's CliRunner swaps sys.stderr per invocation; follow it.
        if getattr(handler, "_lstm_rare_event", False):
            import sys

            handler.setStream(sys.stderr)
    LOGGER.setLevel(logging.WARNING if quiet else logging.INFO)


def info(message: str, *args) -> None:
    LOGGER.info(message, *args)


def warning(message: str, *args) -> None:
    LOGGER.warning("warning: " + message, *args)

"""The entry point of ``python -m lstm_rare_event`` and of the ``lstm-rare-event`` script.

The command line is imported inside the guard: loading NumPy, pandas and click takes a second
or more, and a Ctrl-C then must be the same one line and exit code as one during a step, not
a traceback."""

import sys

from lstm_rare_event.errors import EXIT_INTERRUPTED, interrupted


def main():
    try:
        from lstm_rare_event.cli import main as command_line
    except KeyboardInterrupt:
        sys.stderr.write(interrupted(committed=False) + "\n")
        sys.exit(EXIT_INTERRUPTED)
    command_line()


if __name__ == "__main__":
    main()

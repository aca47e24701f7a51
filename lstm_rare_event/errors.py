"""Exceptions that the command line turns into one-line messages and exit codes."""


class UserError(Exception):
    """Bad input from the user: a file, column, row or option that is not what was expected.

    The CLI prints the message on one line and exits with code 2; the message must name
    the file and the row or column at fault.
    """

    exit_code = 2


EXIT_INTERRUPTED = 130  # 128 + SIGINT: how shells report a Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM: how shells report a kill PID


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill PID, a stopped service, a shutdown) raised as Python raises SIGINT, so that
    what the command was writing is removed or cut back on the way out, as after a Ctrl-C,
    rather than left behind by the default action (the process ends where it stands)."""


def interrupted(committed: bool, how: str = "Interrupted") -> str:
    """The one line for a Ctrl-C (or, ``how`` "Terminated", a SIGTERM): whether the step's files
    were written (a commit holds the signal until it has finished, so it may come after)."""
    done = "the step had finished and its files were written" if committed else "nothing was written"
    return f"{how}; {done}."

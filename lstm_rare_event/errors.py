"""Exceptions that the command line turns into one-line messages and exit codes."""


class UserError(Exception):
    """Bad input from the user: a file, column, row or option that is not what was expected.

    The CLI prints the message on one line and exits with code 2; the message must name
    the file and the row or column at fault.
    """

    exit_code = 2


EXIT_INTERRUPTED = 130  # 128 + SIGINT: how shells report a Ctrl-C


def interrupted(committed: bool) -> str:
    """The one line for a Ctrl-C: whether the step's files were written (a commit holds the
    interrupt until it has finished, so it may come after)."""
    done = "the step had finished and its files were written" if committed else "nothing was written"
    return f"Interrupted; {done}."

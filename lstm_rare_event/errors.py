"""Exceptions that the command line turns into one-line messages and exit codes."""


class UserError(Exception):
    """Bad input from the user: a file, column, row or option that is not what was expected.

    The CLI prints the message on one line and exits with code 2; the message must name
    the file and the row or column at fault.
    """

    exit_code = 2

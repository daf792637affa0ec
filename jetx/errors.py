"""Errors that the command line reports as one line (exit code 2), never as a traceback."""


class JetxInputError(Exception):
    """Bad input from a user: a file, a parameter or a configuration that cannot be used.

    The message must name the argument or file, what was expected and what came in.
    """

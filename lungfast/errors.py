"""One exception type for every problem a user can fix: the CLI prints it as one line, no traceback."""


class LungfastError(Exception):
    """A problem with the user's input or environment, stated as: what, where, and what to do."""

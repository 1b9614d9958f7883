"""One exception type for every problem a user can fix, and the words for the problems of the user's own files
and keys: the CLI prints each as one line, no traceback (`files.os_error_line` words the OSErrors)."""

from __future__ import annotations


class LungfastError(Exception):
    """A problem with the user's input or environment, stated as: what, where, and what to do."""


INTERRUPTED = {  # what an interrupted command leaves, per command (the truth, not one sentence for all)
    "run": "complete runs are kept; the interrupted run keeps its last finished epoch in its hidden staging "
    "folder (runs/<backbone>/.<run>.partial), and the same command resumes from it (--force starts over)",
    "demo": "complete runs are kept; `make demo` again resumes the interrupted one",
    "predict": "no CSV was written",
    "prepare": "tile stores already finished are kept; an unfinished one leaves no file",
}

"""One exception type for every problem a user can fix, and the words for the problems of the user's own files
and keys: the CLI prints each as one line, no traceback (`files.os_error_line` words the OSErrors)."""

from __future__ import annotations

import signal
import threading


class LungfastError(Exception):
    """A problem with the user's input or environment, stated as: what, where, and what to do."""


INTERRUPTED = {  # what an interrupted command leaves, per command (the truth, not one sentence for all)
    "run": "complete runs are kept; the interrupted run keeps its last finished epoch in its hidden staging "
    "folder (runs/<backbone>/.<run>.partial), and the same command resumes from it (--force starts over)",
    "demo": "complete runs are kept; `make demo` again resumes the interrupted one",
    "predict": "no CSV was written",
    "prepare": "tile stores already finished are kept; an unfinished one leaves no file",
}

# Ctrl-C that always stops. fastprogress's console bar wraps a print in a bare `except:` (to choose its fill
# character), so a Ctrl-C landing in that print is swallowed and training runs on. The CLI notes every SIGINT
# (`note_ctrl_c`); `train.callbacks.KeepCtrlC`, beside each fastai bar, raises it again at the next batch.
_ctrl_c_seen = False


def _seen_ctrl_c(signum, frame):
    global _ctrl_c_seen
    _ctrl_c_seen = True
    signal.default_int_handler(signum, frame)  # Python's own: raise KeyboardInterrupt here


def note_ctrl_c(on: bool = True) -> None:
    """Start noting Ctrl-C (main thread, where Python's default handler is in place), or stop and forget it."""
    global _ctrl_c_seen
    _ctrl_c_seen = False
    if threading.current_thread() is not threading.main_thread():
        return
    mine, default = signal.getsignal(signal.SIGINT) is _seen_ctrl_c, signal.default_int_handler
    if on and signal.getsignal(signal.SIGINT) is default:
        signal.signal(signal.SIGINT, _seen_ctrl_c)
    elif not on and mine:
        signal.signal(signal.SIGINT, default)


def raise_swallowed_ctrl_c() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C was noted: the first one was swallowed on its way out."""
    if _ctrl_c_seen:
        raise KeyboardInterrupt

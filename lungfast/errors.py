"""One exception type for every problem a user can fix, and the words for the problems of the user's own files
and keys: the CLI prints each as one line, no traceback."""

from __future__ import annotations

from pathlib import Path


class LungfastError(Exception):
    """A problem with the user's input or environment, stated as: what, where, and what to do."""


INTERRUPTED = {  # what an interrupted command leaves, per command (the truth, not one sentence for all)
    "run": "complete runs are kept; the interrupted run keeps its last finished epoch in its hidden staging "
           "folder (runs/<backbone>/.<run>.partial), and the same command resumes from it (--force starts over)",
    "demo": "complete runs are kept; `make demo` again resumes the interrupted one",
    "predict": "no CSV was written",
    "prepare": "images prepared so far are kept and reused next time",
}


def os_error_line(e: OSError) -> str:
    """One line for a file the user's settings chose: what failed, where, and which setting moves it."""
    import errno

    from lungfast.cache import cache_dir
    from lungfast.results.atomic import FULL, free_bytes

    where = Path(e.filename)
    cache = cache_dir()
    in_cache = where.resolve().is_relative_to(cache.resolve())
    setting = (f"set LUNGFAST_CACHE to a folder on another disk (the cache is now {cache})" if in_cache
               else "choose another results_dir (--set results_dir=DIR) or --out")
    if e.errno in FULL:  # disk full, quota, or the file size limit (ulimit -f)
        return (f"{e.strerror} writing {where} ({free_bytes(where) / 1e6:,.0f} MB free on that disk); free some "
                f"space or {setting}, then run the same command again: finished work is kept, no partial file is")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where}: {e.strerror}; fix its permissions or {setting}"
    if e.errno in (errno.EEXIST, errno.ENOTDIR):
        return f"cannot write below {where}: it is a file where a folder is needed; move it or {setting}"
    return (f"cannot write or read {where}: {e.strerror or e}; check the disk ({free_bytes(where) / 1e6:,.0f} MB "
            f"free there), or {setting}")

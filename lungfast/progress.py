"""Progress you can see: a fastprogress bar in a terminal; in logs and CI (no TTY), a line per tenth.

`--quiet` (logging above INFO) hides both; `-v` adds detail lines elsewhere. One helper for every long
step (store building, embedding, scanning), so they all behave the same.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("lungfast")


def interactive() -> bool:
    """Bars only for a person at a terminal, and not under --quiet."""
    return sys.stderr.isatty() and sys.stdout.isatty() and log.isEnabledFor(logging.INFO)


def bar(total: int, what: str):
    """A callable taking the number done so far."""
    if not log.isEnabledFor(logging.INFO) or total <= 0:
        return lambda n: None
    if interactive():
        from fastprogress.fastprogress import progress_bar

        shown = progress_bar(range(total), comment=what)
        return lambda n: shown.update(n)
    step, last = max(total // 10, 1), [0]

    def line(n):
        if n - last[0] >= step or n == total:
            last[0] = n
            log.info("%s %d/%d", what, n, total)
    return line

"""Progress you can see: a tqdm bar on stderr at a terminal, an HTML bar in a Jupyter notebook (fastprogress,
as fastai draws its own there); in logs and CI (no TTY), a line per tenth.

`--quiet` (logging above INFO) hides both; `-v` adds detail lines elsewhere. One helper for every long
step (store building, embedding, scanning, preparing), so they all behave the same. tqdm, not fastprogress:
fastprogress's console bar draws on stdout (which may carry a CSV) and its API changes between releases
(1.1.6 dropped `comment=`); fastai's own epoch bars stay fastai's.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("lungfast")


def in_notebook() -> bool:
    """Running in a Jupyter kernel, whose front end shows HTML bars (a terminal IPython is not one)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def interactive() -> bool:
    """Bars only for a person at a terminal or in a notebook, and not under --quiet."""
    return (sys.stderr.isatty() or in_notebook()) and log.isEnabledFor(logging.INFO)


def fastai_bars() -> bool:
    """fastai's epoch and batch bars draw on stdout: only when both streams are a terminal (`run > log` logs),
    or in a notebook."""
    return interactive() and (sys.stdout.isatty() or in_notebook())


def bar(total: int, what: str):
    """A callable taking the number done so far; the bar closes itself when `total` is reached."""
    if not log.isEnabledFor(logging.INFO) or total <= 0:
        return lambda n: None
    if in_notebook() and interactive():
        from fastprogress.fastprogress import NBProgressBar

        nb = NBProgressBar(range(total), total=total, comment=what)
        nb.update(0)
        return lambda n: nb.update(n) if nb.last_v is not None and n > nb.last_v else None
    if interactive():
        from tqdm import tqdm

        shown = tqdm(total=total, desc=what, unit="img", file=sys.stderr, dynamic_ncols=True, leave=True)

        def draw(n):
            if not shown.disable and n > shown.n:
                shown.update(n - shown.n)
            if n >= total:
                shown.close()

        return draw
    step, last = max(total // 10, 1), [0]

    def line(n):
        if n - last[0] >= step or n == total:
            last[0] = n
            log.info("%s %d/%d", what, n, total)

    return line

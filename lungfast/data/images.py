"""Find the images of a class-per-folder data set and keep only those that decode.

Odd modes (CMYK, RGBA, grayscale, palette) are fine: fastai's PILImage converts them to RGB on open.
Files that cannot be decoded (empty, truncated, not an image, a dangling or looping symlink) are skipped,
counted and named once, so one bad tile among 25,000 costs a warning line, not the run. Images in
sub-folders of a class folder belong to that class (as `predict` searches folders recursively too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

from lungfast.errors import LungfastError

log = logging.getLogger("lungfast")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".webp"}


def unreadable_reason(path: Path) -> str | None:
    """None if the image decodes to RGB, else a short reason."""
    try:
        if path.is_symlink() and not path.exists():
            return "broken symlink: its target is missing, or it points in a loop"
        if path.stat().st_size == 0:
            return "empty file"
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.draft("RGB", (32, 32))  # JPEG: decode at 1/8 scale; still reads every byte, so truncation shows
                im.load()
                im.convert("RGB")
        return None
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError...) for broken files
        return f"{type(e).__name__}: {e}"[:120]


def class_files(folder: Path) -> list[Path]:
    """Image files below a class folder, sub-folders included, hidden ones not; symlinks kept even when
    broken (they are reported as skipped, not silently lost)."""
    found = []
    for p in folder.rglob("*"):
        hidden = any(part.startswith(".") for part in p.relative_to(folder).parts)
        if not hidden and p.suffix.lower() in IMAGE_SUFFIXES and (p.is_symlink() or p.is_file()):
            found.append(p)
    return sorted(found)


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:  # broken or looping symlink: checked every time (it is cheap)
        return None
    return [st.st_size, st.st_mtime_ns]


def checked(paths: list[Path], root: Path) -> list[str | None]:
    """unreadable_reason of every path, decoding only files not seen before with this size and mtime: the
    verdicts are cached per data folder (`<cache>/scan/`), so an unchanged folder is checked in a second."""
    from lungfast import progress
    from lungfast.cache import cache_dir
    from lungfast.results import atomic

    memo_file = cache_dir("scan") / (hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:20] + ".json")
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):  # none yet, or damaged: check everything again
        memo = {}
    stamps = [_stamp(p) for p in paths]
    todo = [i for i, (p, st) in enumerate(zip(paths, stamps)) if st is None or memo.get(str(p), [None])[:2] != st]
    pending = set(todo)
    reasons = [None if i in pending else memo[str(p)][2] for i, p in enumerate(paths)]
    if todo:
        log.info("checking %d image(s) for readability (%d known from an earlier scan)", len(todo), len(paths) - len(todo))
        shown = progress.bar(len(todo), "checked")
        with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decodes without the GIL
            for n, (i, reason) in enumerate(zip(todo, pool.map(unreadable_reason, [paths[i] for i in todo])), 1):
                reasons[i] = reason
                shown(n)
        fresh = {str(p): [*st, r] for p, st, r in zip(paths, stamps, reasons) if st is not None}
        atomic.write_json(memo_file, fresh)
    return reasons


def scan(data_dir: str | Path) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """(images with columns path,label sorted by label then name; [(skipped path, reason)])."""
    root = Path(data_dir)
    if not root.is_dir():
        raise LungfastError(f"data_dir {root}: not a folder. Point data_dir at the folder holding one sub-folder "
                            f"per class (LC25000: lung_image_sets/), e.g. --set data_dir=PATH")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        found = ", ".join(d.name for d in class_dirs) or "none"
        raise LungfastError(f"data_dir {root}: needs at least 2 class folders, found {found}. "
                            f"Each class is a sub-folder of images (lung_aca, lung_n, lung_scc)")
    files = {d.name: class_files(d) for d in class_dirs}
    empty = [c for c, fs in files.items() if not fs]
    if empty:
        raise LungfastError(f"data_dir {root}: class folder(s) {', '.join(empty)} hold no images "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))}); add images or remove the folder")
    items = [(p, c) for c, fs in files.items() for p in fs]
    reasons = checked([p for p, _ in items], root)
    skipped = [(str(p), r) for (p, _), r in zip(items, reasons) if r]
    good = [(str(p.resolve()), c) for (p, c), r in zip(items, reasons) if not r]
    df = pd.DataFrame(good, columns=["path", "label"])
    left = df.label.value_counts()
    dead = [c for c in files if left.get(c, 0) == 0]
    if dead:
        raise LungfastError(f"data_dir {root}: no readable image in class folder(s) {', '.join(dead)}")
    return df, skipped
